package smtp

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"loft/internal/store"
)

// pipeListener hands net.Pipe connections to a server, so that a fuzz
// target runs whole sessions in memory.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }

// dial opens a session: the client's end of a new pipe.
func (l *pipeListener) dial() net.Conn {
	server, client := net.Pipe()
	l.conns <- server
	return client
}

// FuzzSMTPSession feeds a client's whole side of a session to the SMTP
// and the LMTP server (go-smtp with Loft's backend and connection
// guard): they must never panic, and the session must end when the
// client leaves. Seeds (testdata/fuzz) are real sessions: Postfix,
// Exim, swaks, Python's smtplib, with PIPELINING, CHUNKING, SMTPUTF8, and
// a few hostile ones.
func FuzzSMTPSession(f *testing.F) {
	for _, s := range []string{
		"EHLO mail.example.net\r\nMAIL FROM:<a@example.net> SIZE=120 BODY=8BITMIME\r\nRCPT TO:<fuzz@example.test>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n..dot\r\n.\r\nQUIT\r\n",
		"LHLO mx.example.net\r\nMAIL FROM:<>\r\nRCPT TO:<fuzz@example.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<fuzz@example.test>\r\nBDAT 5 LAST\r\nHello",
		"EHLO x\r\nMAIL FROM:<ü@例え.jp> SMTPUTF8\r\nRCPT TO:<fuzz@example.test>\r\nRSET\r\nNOOP\r\nVRFY fuzz\r\nHELP\r\nQUIT\r\n",
		"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\n",
		"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<someone@elsewhere.example>\r\nAUTH PLAIN AGZ1enoAc2VjcmV0\r\nDATA\r\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, DefaultQuota: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	if _, err := st.CreateAccount(context.Background(), "fuzz@example.test", "x", nil); err != nil {
		f.Fatal(err)
	}
	listeners := map[bool]*pipeListener{}
	for _, lmtp := range []bool{false, true} {
		srv := New(st, Options{
			LMTP: lmtp, Hostname: "mx.example.test", Domains: []string{"example.test"},
			MaxMessageSize: 64 << 10, MaxRecipients: 10, MaxLineLength: 2000,
			IdleTimeout: time.Second, CommandTimeout: time.Second, MaxMessagesPerSession: 5,
		})
		l := newPipeListener()
		listeners[lmtp] = l
		go srv.Serve(l)
		f.Cleanup(func() { srv.Close() })
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		// LMTP if the session starts as LMTP sessions do.
		lmtp := len(input) >= 4 && strings.EqualFold(string(input[:4]), "LHLO")
		c := listeners[lmtp].dial()
		drained := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			drained <- err
		}()
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.Write(input)
		c.Close()
		select {
		case err := <-drained:
			if err != nil && !errors.Is(err, io.ErrClosedPipe) {
				t.Fatalf("reading the server: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end after the client left")
		}
	})
}
