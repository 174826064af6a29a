package smtp

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"loft/internal/store"
)

// expectClosed checks that the server has closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			var ne net.Error
			if errors.Is(err, io.EOF) || errors.As(err, &ne) && !ne.Timeout() {
				return
			}
			c.t.Fatalf("want the connection closed: %v", err)
		}
		c.t.Fatalf("want the connection closed, got %q", line)
	}
}

// TestSTARTTLSWithPipelinedPlaintextRefused: commands sent in the same
// packet as STARTTLS (CVE-2011-0411) get 554 and the connection closes.
func TestSTARTTLSWithPipelinedPlaintextRefused(t *testing.T) {
	e := newEnv(t, store.Unlimited)
	e.addAccount(t, "bob@example.test", nil)
	c := dial(t, e.smtpAddr)
	c.cmd("EHLO client.example", "250 ")
	io.WriteString(c.conn, "STARTTLS\r\nMAIL FROM:<evil@elsewhere.example>\r\nRCPT TO:<bob@example.test>\r\n")
	c.expect("554 5.5.1 Commands pipelined after STARTTLS")
	c.expectClosed()

	// A lone STARTTLS, even in lower case with a trailing space, works.
	c = dial(t, e.smtpAddr)
	c.cmd("EHLO client.example", "250 ")
	c.cmd("starttls ", "220 ")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
}

// TestSMTPSlowlorisDropped: a client trickling a command a byte at a time
// is dropped when the command timeout runs out, not the idle timeout.
func TestSMTPSlowlorisDropped(t *testing.T) {
	e := newEnvWith(t, store.Unlimited, func(o *Options) { o.CommandTimeout = 300 * time.Millisecond })
	c := dial(t, e.smtpAddr)
	start := time.Now()
	for _, b := range []byte("EHLO slow.example") {
		if _, err := c.conn.Write([]byte{b}); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
		if time.Since(start) > 3*time.Second {
			break
		}
	}
	c.expect("421 4.4.2")
	c.expectClosed()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dropped after %v", d)
	}
	// A client that waits between commands is not affected.
	c = dial(t, e.smtpAddr)
	time.Sleep(400 * time.Millisecond)
	c.cmd("EHLO patient.example", "250 ")
}

// TestSMTPSlowDataNotCutByCommandTimeout: message data keeps the DATA
// command's (idle) deadline: a message may take longer than a command.
func TestSMTPSlowDataNotCutByCommandTimeout(t *testing.T) {
	e := newEnvWith(t, store.Unlimited, func(o *Options) { o.CommandTimeout = 200 * time.Millisecond })
	e.addAccount(t, "bob@example.test", nil)
	c := dial(t, e.smtpAddr)
	c.cmd("EHLO client.example", "250 ")
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<bob@example.test>", "250 ")
	c.cmd("DATA", "354 ")
	for _, part := range []string{"Subject: slow\r\n", "\r\n", "line one\r\n", "line two\r\n"} {
		io.WriteString(c.conn, part)
		time.Sleep(150 * time.Millisecond)
	}
	io.WriteString(c.conn, ".\r\n")
	c.expect("250 ")
	if got := e.inbox(t, "bob@example.test"); len(got) != 1 {
		t.Fatalf("inbox %q", got)
	}
}

func TestSMTPMessagesPerSessionLimit(t *testing.T) {
	e := newEnvWith(t, store.Unlimited, func(o *Options) { o.MaxMessagesPerSession = 2 })
	e.addAccount(t, "bob@example.test", nil)
	for _, addr := range []string{e.smtpAddr, e.lmtpAddr} {
		c := dial(t, addr)
		c.cmd("LHLO client.example", "") // SMTP answers 500, LMTP 250
		c.cmd("EHLO client.example", "")
		for range 2 {
			c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
			c.cmd("RCPT TO:<bob@example.test>", "250 ")
			c.data("Subject: x\r\n\r\nx\r\n", "250 ")
		}
		if addr == e.lmtpAddr { // LMTP is not limited
			c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
			continue
		}
		c.cmd("MAIL FROM:<a@elsewhere.example>", "421 4.7.0 Too many messages in this session")
		c.expectClosed()
	}
}

// TestSMTPHugeLineRefusedOthersServed: a 10 MB command line closes that
// connection only.
func TestSMTPHugeLineRefusedOthersServed(t *testing.T) {
	e := newEnv(t, store.Unlimited)
	c := dial(t, e.smtpAddr)
	go io.WriteString(c.conn, "EHLO "+strings.Repeat("x", 10<<20)+"\r\n")
	c.expect("500 5.4.0")
	c.expectClosed()
	dial(t, e.smtpAddr).cmd("EHLO client.example", "250 ")
	c = dial(t, e.smtpAddr)
	c.cmd("EHLO \xff\xfe.example", "")
	c.cmd("MAIL FROM:<\xff@example.test>", "")
	c.cmd("NOOP", "250 ")
}
