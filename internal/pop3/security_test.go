package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"loft/internal/auth"
	"loft/internal/auth/authtest"
	"loft/internal/config"
	"loft/internal/store"
)

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// dialFrom connects to addr from another loopback address (127.0.0.0/8
// is all loopback), so that tests can play two clients.
func (ts *testServer) dialFrom(local string) *client {
	ts.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := d.Dial("tcp", ts.addr)
	if err != nil {
		ts.t.Fatal(err)
	}
	return newClient(ts.t, conn)
}

// withSCRAM gives alice SCRAM keys for testPassword, as `loft account add`
// does.
func withSCRAM(t *testing.T, ts *testServer, address string) {
	t.Helper()
	hash, _ := auth.HashPassword(testPassword)
	scram, _ := auth.HashSCRAM(testPassword)
	if err := ts.st.SetCredentials(context.Background(), address, store.Credentials{PasswordHash: hash, SCRAMSHA256: scram}); err != nil {
		t.Fatal(err)
	}
}

// scramAuth runs AUTH SCRAM-SHA-256 for user with password on c and
// returns the final response line.
func scramAuth(t *testing.T, c *client, user, password string) string {
	t.Helper()
	sc := authtest.NewSCRAMClient(user, password, "")
	serverFirst := c.cmd("AUTH SCRAM-SHA-256 " + b64(sc.First()))
	if !strings.HasPrefix(serverFirst.line, "+ ") {
		return serverFirst.line
	}
	first, err := base64.StdEncoding.DecodeString(serverFirst.line[2:])
	if err != nil {
		t.Fatal(err)
	}
	final, err := sc.Final(string(first))
	if err != nil {
		t.Fatal(err)
	}
	r := c.cmd(b64(final))
	if !strings.HasPrefix(r.line, "+ ") {
		return r.line
	}
	v, _ := base64.StdEncoding.DecodeString(r.line[2:])
	if err := sc.Verify(string(v)); err != nil {
		t.Fatalf("server signature: %v", err)
	}
	return c.cmd("").line // RFC 5034 §4: an empty response to the last challenge
}

func TestPOP3AuthSCRAMSHA256(t *testing.T) {
	ts, a := withMessages(t, nil)
	withSCRAM(t, ts, a.Address)
	c := ts.dial()
	if got := scramAuth(t, c, "Alice@Example.org", testPassword); got != "+OK alice@example.org has 2 messages (113 octets)" {
		t.Fatalf("SCRAM login: %q", got)
	}
	c.cmd("STAT").expect("+OK 2 113")

	// Without an initial response: an empty challenge first.
	c = ts.dial()
	c.cmd("AUTH SCRAM-SHA-256").expect("+ ")
	c.cmd("*").expect("-ERR Authentication cancelled")

	// Wrong password and unknown account: the same [AUTH] answer.
	c = ts.dial()
	if got := scramAuth(t, c, a.Address, "wrong"); got != "-ERR [AUTH] Authentication failed" {
		t.Fatalf("wrong password: %q", got)
	}
	if got := scramAuth(t, c, "nobody@example.org", testPassword); got != "-ERR [AUTH] Authentication failed" {
		t.Fatalf("unknown account: %q", got)
	}
}

// TestPOP3UnknownUserAndWrongPasswordAnswerAlike: byte for byte, over
// USER/PASS, AUTH PLAIN and AUTH LOGIN.
func TestPOP3UnknownUserAndWrongPasswordAnswerAlike(t *testing.T) {
	ts, a := withMessages(t, func(o *Options) { o.MaxAuthFailures = 100 })
	c := ts.dial()
	transcript := func(user, pass string) []string {
		return []string{
			c.cmd("USER " + user).line,
			c.cmd("PASS " + pass).line,
			c.cmd("AUTH PLAIN " + b64("\x00"+user+"\x00"+pass)).line,
			c.cmd("AUTH LOGIN " + b64(user)).line,
			c.cmd(b64(pass)).line,
		}
	}
	wrong := transcript(a.Address, "wrong")
	unknown := transcript("nobody@example.org", "wrong")
	if strings.Join(wrong, "\n") != strings.Join(unknown, "\n") {
		t.Fatalf("wrong password:\n%q\nunknown account:\n%q", wrong, unknown)
	}
}

func TestPOP3BlockedAddressGetsSysTemp(t *testing.T) {
	var logs syncBuffer
	throttle := auth.NewThrottle(auth.ThrottleOptions{
		FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond,
		BlockAfter: 4, BlockFor: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	ts, a := withMessages(t, func(o *Options) { o.Throttle = throttle })
	for range 2 {
		c := ts.dial()
		c.cmd("USER " + a.Address).expect("+OK Send your password")
		c.cmd("PASS wrong").expect("-ERR [AUTH] Authentication failed")
		c.cmd("USER " + a.Address).expect("+OK Send your password")
		c.cmd("PASS wrong").expect("-ERR [AUTH] Authentication failed")
	}
	// The right password from that address is refused now, and the
	// connection closed; never [AUTH], which would ask for a new password.
	c := ts.dial()
	c.cmd("USER " + a.Address).expect("+OK Send your password")
	c.cmd("PASS " + testPassword).expect("-ERR [SYS/TEMP] Too many failed logins from your address; try again later")
	c.expectClosed()
	c = ts.dial()
	c.cmd("AUTH PLAIN " + b64("\x00"+a.Address+"\x00"+testPassword)).expect("-ERR [SYS/TEMP] Too many failed logins from your address; try again later")
	// Another address logs in.
	ts.dialFrom("127.0.0.2").login(a.Address)
	if n := strings.Count(logs.String(), "address blocked"); n != 1 {
		t.Fatalf("block logged %d times: %s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "ip=127.0.0.1") {
		t.Fatalf("block log without the address: %s", logs.String())
	}
}

// TestPOP3TwentyFailuresSlowOneAddressOnly: after 20 wrong passwords from
// one address its answers come slowly, while another address logs in, and
// even fails, at full speed.
func TestPOP3TwentyFailuresSlowOneAddressOnly(t *testing.T) {
	// The cap is well above one argon2id check under the race detector on
	// a loaded 2-core machine (about 1 s at worst in CI), so that the
	// comparisons below measure the throttle, not the machine.
	const capDelay = 3 * time.Second
	throttle := auth.NewThrottle(auth.ThrottleOptions{FailureDelay: time.Millisecond, MaxFailureDelay: capDelay})
	ts, a := withMessages(t, func(o *Options) { o.Throttle = throttle })
	bob := ts.addAccount("bob@example.org")
	// 20 wrong passwords from 127.0.0.1, on 20 connections at once (so
	// that the test waits for the longest delay only, not their sum).
	var wg sync.WaitGroup
	for i := range 20 {
		c := ts.dial()
		wg.Go(func() {
			fmt.Fprintf(c.conn, "USER %s\r\nPASS wrong %d\r\n", a.Address, i)
			c.readLineErr() // +OK Send your password
			c.readLineErr() // -ERR [AUTH] …
		})
	}
	wg.Wait()
	c := ts.dial()
	c.cmd("USER " + a.Address).expect("+OK Send your password")
	start := time.Now()
	c.cmd("PASS wrong again").expect("-ERR [AUTH] Authentication failed")
	slow := time.Since(start)
	if slow < capDelay {
		t.Fatalf("21st failure from one address answered after %v, want the %v cap", slow, capDelay)
	}

	// Both answers below pay one argon2id check, as the one above did;
	// only the throttle's delay differs.
	other := ts.dialFrom("127.0.0.2")
	other.cmd("USER " + bob.Address).expect("+OK Send your password")
	start = time.Now()
	other.cmd("PASS " + testPassword).expectPrefix("+OK bob@example.org has 0 messages")
	if d := time.Since(start); d > slow-capDelay/2 {
		t.Fatalf("another address logged in after %v; the slowed one waits %v", d, slow)
	}
	other = ts.dialFrom("127.0.0.2")
	other.cmd("USER " + bob.Address).expect("+OK Send your password")
	start = time.Now()
	other.cmd("PASS mistyped").expect("-ERR [AUTH] Authentication failed")
	if d := time.Since(start); d > slow-capDelay/2 {
		t.Fatalf("another address's first failure took %v; the slowed one waits %v", d, slow)
	}
	if n, _ := throttle.Failures(netip.MustParseAddr("127.0.0.1"), ""); n != 21 {
		t.Fatalf("%d failures counted for 127.0.0.1, want 21", n)
	}
}

func TestPOP3SessionsPerAccountAndAddressAreLimited(t *testing.T) {
	var authn *auth.Authenticator
	ts, a := withMessages(t, nil)
	authn = auth.NewAuthenticator(auth.AuthenticatorOptions{Accounts: ts.st, MaxSessionsPerAccountIP: 2})
	ts.srv.Close()
	ts.opts.Auth = authn
	ts.serve()
	first := ts.login(a.Address)
	ts.login(a.Address)
	c := ts.dial()
	c.cmd("USER " + a.Address).expect("+OK Send your password")
	c.cmd("PASS " + testPassword).expect("-ERR [SYS/TEMP] Too many sessions of this account from your address; close some and try again")
	// Another address may, and so may this one once a session ends.
	ts.dialFrom("127.0.0.2").login(a.Address)
	first.cmd("QUIT").expectPrefix("+OK")
	first.expectClosed()
	eventually(t, "the session's place freed", func() bool {
		c := ts.dial()
		c.cmd("USER " + a.Address)
		ok := strings.HasPrefix(c.cmd("PASS "+testPassword).line, "+OK")
		c.conn.Close()
		return ok
	})
}

// TestPOP3SlowlorisDropped: a client that trickles a command a byte at a
// time is dropped when the command timeout runs out, long before the idle
// timeout, and others are served meanwhile.
func TestPOP3SlowlorisDropped(t *testing.T) {
	ts, a := withMessages(t, func(o *Options) { o.CommandTimeout = 300 * time.Millisecond })
	c := ts.dial()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		for _, b := range []byte("NOOP") {
			c.conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.conn.Write([]byte{b}); err != nil {
				break
			}
			time.Sleep(150 * time.Millisecond)
		}
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.r.ReadString('\n') // EOF once the server gives up
		closed <- time.Since(start)
	}()
	ts.login(a.Address).cmd("STAT").expect("+OK 2 113")
	select {
	case d := <-closed:
		if d > 2*time.Second {
			t.Fatalf("slow client dropped after %v", d)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("slow client still connected")
	}
}

// TestPOP3HugeLineAndInvalidUTF8 keep the server serving others.
func TestPOP3HugeLineAndInvalidUTF8(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.dial()
	go func() {
		big := strings.Repeat("A", 10<<20) // a 10 MB command line
		c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.conn.Write([]byte("USER " + big + "\r\n"))
	}()
	c.expectClosed()

	c = ts.dial()
	c.cmd("USER \xff\xfe\xc0\x80@example.org").expect("+OK Send your password")
	c.cmd("PASS \xff").expect("-ERR [AUTH] Authentication failed")
	c.cmd("\xff\xfe").expect("-ERR Unknown command")
	ts.login(a.Address).cmd("STAT").expect("+OK 2 113")
}

// TestPOP3PlaintextNeverAllowsSCRAMOnlyAfterSTLS: with auth.plaintext =
// never, no mechanism at all is offered or accepted before STLS.
func TestPOP3PlaintextNeverAllowsSCRAMOnlyAfterSTLS(t *testing.T) {
	ts, a := withMessages(t, func(o *Options) { o.Plaintext = config.PlaintextNever })
	withSCRAM(t, ts, a.Address)
	c := ts.dial()
	c.cmd("AUTH SCRAM-SHA-256").expect("-ERR Password login needs TLS on this connection: use STLS first")
	c.cmd("AUTH").expectBody("+OK Mechanisms follow")
	c.cmd("STLS").expect("+OK Begin TLS negotiation")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	if got := scramAuth(t, c, a.Address, testPassword); !strings.HasPrefix(got, "+OK alice@example.org has 2") {
		t.Fatalf("SCRAM after STLS: %q", got)
	}
}
