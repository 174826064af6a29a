package imap

import (
	"net"
	"testing"
	"time"
)

// A session waiting for its client holds no read buffer; the line it then
// reads is whole, even when the client sends it in pieces, and input
// already buffered (pipelined commands) keeps the buffer.
func TestReaderParksWhileWaiting(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	s := &session{p: &parser{}}
	s.useConn(server)
	s.parkReader()
	if s.p.r != nil {
		t.Fatal("an idle reader kept its buffer")
	}
	go func() {
		client.Write([]byte("a"))
		time.Sleep(20 * time.Millisecond)
		client.Write([]byte(" NOOP\r\nb NOOP\r\n"))
	}()
	if err := s.readLine(); err != nil {
		t.Fatal(err)
	}
	if got := string(s.p.line); got != "a NOOP" {
		t.Errorf("first line %q", got)
	}
	s.parkReader() // "b NOOP" is buffered: kept
	if s.p.r == nil {
		t.Fatal("parked a buffer holding unread input")
	}
	if err := s.readLine(); err != nil {
		t.Fatal(err)
	}
	if got := string(s.p.line); got != "b NOOP" {
		t.Errorf("second line %q", got)
	}
	s.parkReader()
	client.Close()
	if err := s.readLine(); err == nil {
		t.Error("no error after the client went away")
	}
}
