package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"loft/internal/certs"
	"loft/internal/store"
)

// env is a store and an SMTP and LMTP server on 127.0.0.1 for one test.
type env struct {
	st       *store.Store
	smtpAddr string
	lmtpAddr string
}

const testMaxSize = 1 << 20

func newEnv(t *testing.T, defaultQuota int64) *env {
	t.Helper()
	return newEnvWith(t, defaultQuota, nil)
}

// newEnvWith is newEnv with Options changed by edit (for both servers).
func newEnvWith(t *testing.T, defaultQuota int64, edit func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, DefaultQuota: defaultQuota})
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := certs.Config("", "", dir, "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st}
	for _, lmtp := range []bool{false, true} {
		opts := Options{
			LMTP:           lmtp,
			Hostname:       "mx.example.test",
			Domains:        []string{"example.test"},
			MaxMessageSize: testMaxSize,
			MaxRecipients:  100,
			MaxLineLength:  64000,
			TLS:            tlsConf,
		}
		if edit != nil {
			edit(&opts)
		}
		srv := New(st, opts)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		if lmtp {
			e.lmtpAddr = l.Addr().String()
		} else {
			e.smtpAddr = l.Addr().String()
		}
	}
	t.Cleanup(func() { st.Close() })
	return e
}

func (e *env) addAccount(t *testing.T, addr string, quota *int64) *store.Account {
	t.Helper()
	a, err := e.st.CreateAccount(context.Background(), addr, "x", quota)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// inbox returns the bodies of the messages in an account's INBOX.
func (e *env) inbox(t *testing.T, addr string) []string {
	t.Helper()
	ctx := context.Background()
	a, err := e.st.Account(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := e.st.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := e.st.Messages(ctx, a.ID, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		f, err := e.st.OpenBody(m.Blob)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		out = append(out, string(b))
	}
	return out
}

// client speaks SMTP line by line so tests can assert exact replies.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("220 ")
	return c
}

// reply reads one (possibly multi-line) reply and returns its lines.
func (c *client) reply() []string {
	c.t.Helper()
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read reply: %v (so far %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return lines
		}
	}
}

// expect reads a reply whose last line starts with prefix.
func (c *client) expect(prefix string) []string {
	c.t.Helper()
	lines := c.reply()
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, prefix) {
		c.t.Fatalf("got %q, want %q…", lines, prefix)
	}
	return lines
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) cmd(line, want string) []string {
	c.t.Helper()
	c.send(line)
	return c.expect(want)
}

// data sends a message (already CRLF, dot-stuffed by this function).
func (c *client) data(msg string, want string) {
	c.t.Helper()
	c.cmd("DATA", "354 ")
	var b strings.Builder
	for _, line := range strings.SplitAfter(msg, "\r\n") {
		if strings.HasPrefix(line, ".") {
			b.WriteString(".")
		}
		b.WriteString(line)
	}
	b.WriteString(".\r\n")
	io.WriteString(c.conn, b.String())
	c.expect(want)
}

func TestEHLOAdvertisesExtensions(t *testing.T) {
	e := newEnv(t, store.Unlimited)
	c := dial(t, e.smtpAddr)
	lines := c.cmd("EHLO client.example", "250 ")
	got := strings.Join(lines, "\n")
	for _, ext := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8",
		"STARTTLS", fmt.Sprintf("SIZE %d", testMaxSize)} {
		if !strings.Contains(got, ext) {
			t.Errorf("EHLO lacks %s:\n%s", ext, got)
		}
	}
}

func TestSMTPStoresMessageByteExact(t *testing.T) {
	e := newEnv(t, store.Unlimited)
	e.addAccount(t, "bob@example.test", nil)
	msg := "From: Alice <alice@elsewhere.example>\r\n" +
		"To: bob@example.test\r\n" +
		"Subject: =?utf-8?q?caf=C3=A9?= and raw 8-bit caf\xc3\xa9\r\n" +
		"X-Broken header without colon\r\n" +
		"Content-Type: text/plain; charset=\"utf-8\r\n" +
		"\r\n" +
		strings.Repeat("0123456789", 500) + "\r\n" +
		".a line starting with a dot\r\n" +
		"8-bit body: Grüße, 日本語\r\n"
	c := dial(t, e.smtpAddr)
	c.cmd("EHLO client.example", "250 ")
	c.cmd("MAIL FROM:<alice@elsewhere.example> BODY=8BITMIME", "250 ")
	c.cmd("RCPT TO:<Bob@Example.test>", "250 ")
	c.data(msg, "250 ")
	c.cmd("QUIT", "221 ")

	got := e.inbox(t, "bob@example.test")
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	if !strings.HasPrefix(got[0], "Return-Path: <alice@elsewhere.example>\r\nReceived: from client.example ([127.0.0.1])\r\n\tby mx.example.test (Loft) with ESMTP id ") {
		t.Errorf("trace headers:\n%.300s", got[0])
	}
	if !strings.Contains(got[0], "\tfor <bob@example.test>; ") {
		t.Errorf("Received lacks the recipient:\n%.300s", got[0])
	}
	_, body, ok := strings.Cut(got[0], "\r\n\tfor <bob@example.test>; ")
	if !ok {
		t.Fatal("no Received header")
	}
	_, body, _ = strings.Cut(body, "\r\n")
	if body != msg {
		t.Errorf("stored message differs from the one sent:\n got %.200q\nwant %.200q", body, msg)
	}
}

func TestUnknownRecipientAndRelay(t *testing.T) {
	e := newEnv(t, store.Unlimited)
	e.addAccount(t, "bob@example.test", nil)
	c := dial(t, e.smtpAddr)
	c.cmd("EHLO client.example", "250 ")
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<nobody@example.test>", "550 5.1.1 ")
	c.cmd("RCPT TO:<victim@elsewhere.example>", "554 5.7.1 ")
	c.cmd("RCPT TO:<bob@example.test.evil.example>", "554 5.7.1 ")
	c.cmd("RCPT TO:<bob@example.test>", "250 ")
	c.data("Subject: hi\r\n\r\nhi\r\n", "250 ")
	if got := e.inbox(t, "bob@example.test"); len(got) != 1 {
		t.Errorf("%d messages", len(got))
	}
}

func TestOverQuota(t *testing.T) {
	e := newEnv(t, 2000)
	e.addAccount(t, "full@example.test", nil)
	e.addAccount(t, "open@example.test", nil)
	body := "Subject: x\r\n\r\n" + strings.Repeat("y", 1500) + "\r\n"

	c := dial(t, e.smtpAddr)
	c.cmd("EHLO client.example", "250 ")
	// SIZE= shows it cannot fit: refused at RCPT.
	c.cmd("MAIL FROM:<a@elsewhere.example> SIZE=5000", "250 ")
	c.cmd("RCPT TO:<full@example.test>", "552 5.2.2 ")
	c.cmd("RSET", "250 ")
	// It fits: stored.
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<full@example.test>", "250 ")
	c.data(body, "250 ")
	// No SIZE=, and it no longer fits: refused after DATA.
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<full@example.test>", "250 ")
	c.data(body, "552 5.2.2 ")
	// Already full: refused at RCPT.
	q := int64(1600)
	if err := e.st.SetQuota(context.Background(), "full@example.test", &q); err != nil {
		t.Fatal(err)
	}
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<full@example.test>", "552 5.2.2 ")
	c.cmd("RSET", "250 ")
	// SMTP with one full and one open recipient after DATA: stored for
	// none (one reply covers both), and the sender hears it is permanent.
	q = 3000
	e.st.SetQuota(context.Background(), "full@example.test", &q)
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<full@example.test>", "250 ")
	c.cmd("RCPT TO:<open@example.test>", "250 ")
	c.data(body, "552 5.2.2 ")
	if n := len(e.inbox(t, "open@example.test")); n != 0 {
		t.Errorf("open mailbox got %d messages from a refused transaction", n)
	}
	if n := len(e.inbox(t, "full@example.test")); n != 1 {
		t.Errorf("full mailbox has %d messages, want 1", n)
	}
}

func TestLMTPAnswersPerRecipient(t *testing.T) {
	e := newEnv(t, 2000)
	e.addAccount(t, "full@example.test", nil)
	e.addAccount(t, "open@example.test", nil)
	if res, err := e.st.Deliver(context.Background(), strings.NewReader(strings.Repeat("z", 1900)),
		store.DeliverOptions{Recipients: []string{"full@example.test"}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	c := dial(t, e.lmtpAddr)
	c.cmd("LHLO mta.example", "250 ")
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<open@example.test>", "250 ")
	c.cmd("RCPT TO:<nobody@example.test>", "550 5.1.1 ")
	// Not yet full at RCPT without SIZE; full once the body arrives.
	c.cmd("RCPT TO:<full@example.test>", "250 ")
	c.cmd("RCPT TO:<open@example.test>", "250 ")
	c.cmd("DATA", "354 ")
	io.WriteString(c.conn, "Subject: lmtp\r\n\r\n"+strings.Repeat("w", 200)+"\r\n.\r\n")
	c.expect("250 ")       // open
	c.expect("552 5.2.2 ") // full
	c.expect("250 ")       // open again
	if n := len(e.inbox(t, "open@example.test")); n != 1 {
		t.Errorf("open mailbox has %d messages, want 1", n)
	}
	got := e.inbox(t, "open@example.test")[0]
	if !strings.Contains(got, "with LMTP id ") {
		t.Errorf("Received header: %.200s", got)
	}
}

func TestOversizeMessage(t *testing.T) {
	e := newEnv(t, store.Unlimited)
	e.addAccount(t, "bob@example.test", nil)
	c := dial(t, e.smtpAddr)
	c.cmd("EHLO client.example", "250 ")
	c.cmd(fmt.Sprintf("MAIL FROM:<a@elsewhere.example> SIZE=%d", testMaxSize+1), "552 5.3.4 ")
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<bob@example.test>", "250 ")
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("b", 998)+"\r\n", testMaxSize/1000+10)
	c.data(big, "552 5.3.4 ")
	// The session goes on.
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<bob@example.test>", "250 ")
	c.data("Subject: small\r\n\r\nok\r\n", "250 ")
	if got := e.inbox(t, "bob@example.test"); len(got) != 1 || !strings.Contains(got[0], "Subject: small") {
		t.Errorf("inbox: %d messages", len(got))
	}
	rep, _ := e.st.Check(context.Background())
	if len(rep.Problems) > 0 || rep.Unreferenced > 0 {
		t.Errorf("check after a refused oversize message: %+v", rep)
	}
}

func TestChunkingAndPipelining(t *testing.T) {
	e := newEnv(t, store.Unlimited)
	e.addAccount(t, "bob@example.test", nil)
	c := dial(t, e.smtpAddr)
	c.cmd("EHLO client.example", "250 ")
	part1, part2 := "Subject: bdat\r\n\r\n", "chunked body\r\n"
	io.WriteString(c.conn, "MAIL FROM:<a@elsewhere.example>\r\nRCPT TO:<bob@example.test>\r\n"+
		fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1)+fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	c.expect("250 ")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("250 ")
	got := e.inbox(t, "bob@example.test")
	if len(got) != 1 || !strings.HasSuffix(got[0], part1+part2) {
		t.Errorf("inbox %q", got)
	}
}

func TestSTARTTLS(t *testing.T) {
	e := newEnv(t, store.Unlimited)
	e.addAccount(t, "bob@example.test", nil)
	c := dial(t, e.smtpAddr)
	c.cmd("EHLO client.example", "250 ")
	c.cmd("STARTTLS", "220 ")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.cmd("EHLO client.example", "250 ")
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<bob@example.test>", "250 ")
	c.data("Subject: tls\r\n\r\nx\r\n", "250 ")
	if got := e.inbox(t, "bob@example.test"); len(got) != 1 || !strings.Contains(got[0], "with ESMTPS id") {
		t.Errorf("inbox %q", got)
	}
}

func TestShutdownLetsDeliveryFinish(t *testing.T) {
	e := newEnv(t, store.Unlimited)
	e.addAccount(t, "bob@example.test", nil)
	srv := New(e.st, Options{Hostname: "mx.example.test", Domains: []string{"example.test"},
		MaxMessageSize: testMaxSize, MaxRecipients: 10, MaxLineLength: 64000})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	c := dial(t, l.Addr().String())
	idle := dial(t, l.Addr().String()) // must not hold the shutdown up
	idle.cmd("EHLO idle.example", "250 ")
	c.cmd("EHLO client.example", "250 ")
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<bob@example.test>", "250 ")
	c.cmd("DATA", "354 ")
	io.WriteString(c.conn, "Subject: in flight\r\n\r\npart one\r\n")
	done := make(chan error, 1)
	go func() {
		// Give the delivery time to be seen as under way.
		time.Sleep(200 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	time.Sleep(400 * time.Millisecond)
	io.WriteString(c.conn, "part two\r\n.\r\n")
	c.expect("250 ")
	if err := <-done; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown: %v", err)
	}
	if got := e.inbox(t, "bob@example.test"); len(got) != 1 {
		t.Errorf("%d messages after shutdown", len(got))
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("still accepting after shutdown")
	}
}
