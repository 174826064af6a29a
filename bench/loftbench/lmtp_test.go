package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// countingBackend is a tiny LMTP server backend: it accepts every message (except for the
// recipient in reject), keeps what it received, and counts.
type countingBackend struct {
	reject string // RCPT TO this address gets 550 5.1.1
	mu     sync.Mutex
	bodies map[string]int // body → times received
	rcpts  map[string]int // recipient → messages received
	conns  map[*smtp.Conn]bool
}

func (b *countingBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.mu.Lock()
	b.conns[c] = true
	b.mu.Unlock()
	return &countingSession{b: b}, nil
}

type countingSession struct {
	b    *countingBackend
	rcpt string
}

func (s *countingSession) Reset()        { s.rcpt = "" }
func (s *countingSession) Logout() error { return nil }
func (s *countingSession) Mail(from string, _ *smtp.MailOptions) error {
	if from != "loftbench@localhost" {
		return fmt.Errorf("unexpected sender %q", from)
	}
	return nil
}
func (s *countingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == s.b.reject {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	if s.rcpt != "" {
		return fmt.Errorf("second recipient %q in one transaction", to)
	}
	s.rcpt = to
	return nil
}
func (s *countingSession) Data(r io.Reader) error {
	body, err := io.ReadAll(r) // go-smtp undoes the dot-stuffing
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	s.b.bodies[string(body)]++
	s.b.rcpts[s.rcpt]++
	s.b.mu.Unlock()
	return nil
}

// startLMTP starts an in-process LMTP server on 127.0.0.1:0 and returns its address.
func startLMTP(t *testing.T, be *countingBackend) string {
	t.Helper()
	be.bodies, be.rcpts, be.conns = map[string]int{}, map[string]int{}, map[*smtp.Conn]bool{}
	s := smtp.NewServer(be)
	s.LMTP = true
	s.Domain = "localhost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// testMessages are ten messages whose bodies test the DATA encoding: leading dots, a lone
// dot line, an escaped From_ line, with and without the empty line before the next From_ line,
// no final newline.
func testMessages(t *testing.T) ([]message, []string) {
	t.Helper()
	var mbox strings.Builder
	for i := range 10 {
		fmt.Fprintf(&mbox, "From sender@example.com Mon Jan  1 00:00:%02d 2024\n", i)
		fmt.Fprintf(&mbox, "Subject: test %d\n\n.leading dot\n.\n..\n>From escaped\nline %d", i, i)
		switch {
		case i == 9: // the last one ends without a newline
		case i%2 == 0:
			mbox.WriteString("\n\n") // with the usual empty line before the next From_ line
		default:
			mbox.WriteString("\n") // without it
		}
	}
	var msgs []message
	var want []string
	for _, m := range splitMbox([]byte(mbox.String())) {
		msgs = append(msgs, message{wire: dotStuff(m), size: len(m)})
		want = append(want, string(m))
	}
	if len(msgs) != 10 {
		t.Fatalf("test mbox has %d messages, want 10", len(msgs))
	}
	return msgs, want
}

func testOptions(addr string, msgs []message) lmtpOptions {
	return lmtpOptions{
		Addr: addr, Messages: msgs, Conns: 2, Accounts: 5, UserFormat: "bench%d",
		Domain: "bench.test", From: "loftbench@localhost", LHLO: "localhost",
		Count: 20, Duration: 10 * time.Second, Timeout: 5 * time.Second,
	}
}

func TestRunLMTPDeliversCountOverConns(t *testing.T) {
	be := &countingBackend{}
	addr := startLMTP(t, be)
	msgs, want := testMessages(t)

	res, err := runLMTP(context.Background(), testOptions(addr, msgs))
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 20 || res.Errors != 0 {
		t.Fatalf("messages %d errors %d (%q), want 20 and 0", res.Messages, res.Errors, res.FirstErrors)
	}
	var wantBytes int64
	for i := range 20 {
		wantBytes += int64(msgs[i%10].size)
	}
	if res.Bytes != wantBytes {
		t.Errorf("bytes %d, want %d", res.Bytes, wantBytes)
	}
	if res.P50ms <= 0 || res.P99ms < res.P50ms || res.MsgsPerSec <= 0 {
		t.Errorf("implausible figures: %+v", res)
	}

	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.conns) != 2 {
		t.Errorf("server saw %d connections, want 2 reused ones", len(be.conns))
	}
	for _, body := range want {
		if be.bodies[body] != 2 {
			t.Errorf("body %q received %d times, want 2 (dot-stuffing or mbox splitting wrong?)", body, be.bodies[body])
		}
	}
	for i := 1; i <= 5; i++ {
		if rcpt := fmt.Sprintf("bench%d@bench.test", i); be.rcpts[rcpt] != 4 {
			t.Errorf("%s received %d messages, want 4", rcpt, be.rcpts[rcpt])
		}
	}
}

func TestRunLMTPCountsRejectionsAndCarriesOn(t *testing.T) {
	be := &countingBackend{reject: "bench3@bench.test"}
	addr := startLMTP(t, be)
	msgs, _ := testMessages(t)

	res, err := runLMTP(context.Background(), testOptions(addr, msgs))
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 16 || res.Errors != 4 {
		t.Fatalf("messages %d errors %d, want 16 and 4", res.Messages, res.Errors)
	}
	if len(res.FirstErrors) == 0 || !strings.Contains(res.FirstErrors[0], "550") {
		t.Errorf("first errors %q, want a 550", res.FirstErrors)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.rcpts["bench4@bench.test"] != 4 {
		t.Errorf("bench4 got %d messages after bench3's rejections, want 4", be.rcpts["bench4@bench.test"])
	}
}

func TestRunLMTPStopsAtDuration(t *testing.T) {
	be := &countingBackend{}
	addr := startLMTP(t, be)
	msgs, _ := testMessages(t)
	o := testOptions(addr, msgs)
	o.Count, o.Duration = 1_000_000, 200*time.Millisecond

	start := time.Now()
	res, err := runLMTP(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("run took %v with --duration 200ms", d)
	}
	if res.Messages == 0 || res.Messages >= o.Count {
		t.Errorf("messages %d", res.Messages)
	}
}

func TestLoopbackAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:24", "127.0.0.1:24"},
		{"127.5.6.7:24", "127.5.6.7:24"},
		{"[::1]:24", "[::1]:24"},
		{"localhost:24", "127.0.0.1:24"},
		{"LOCALHOST.:24", "127.0.0.1:24"},
		{"10.0.0.1:24", ""},
		{"[::]:24", ""},
		{"0.0.0.0:24", ""},
		{"example.com:24", ""},
		{"localhost.example.com:24", ""},
		{"127.0.0.1", ""},
		{"127.0.0.1:0", ""},
		{"127.0.0.1:lmtp", ""},
	} {
		got, err := loopbackAddr(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("loopbackAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
