package pop3

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"
	"time"

	"loft/internal/auth"
	"loft/internal/config"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// starttls runs STLS and the TLS handshake on c.
func (c *client) starttls() {
	c.t.Helper()
	c.cmd("STLS").expect("+OK Begin TLS negotiation")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake after STLS: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

func TestPOP3CapaPerState(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.dial()
	// Plain connection from loopback (passwords allowed there by default).
	c.cmd("CAPA").expectBody("+OK Capability list follows",
		"TOP", "USER", "SASL SCRAM-SHA-256 PLAIN LOGIN", "STLS", "RESP-CODES", "AUTH-RESP-CODE",
		"PIPELINING", "EXPIRE NEVER", "UIDL", "IMPLEMENTATION Loft")
	// Under TLS: no STLS.
	c.starttls()
	c.cmd("CAPA").expectBody("+OK Capability list follows",
		"TOP", "USER", "SASL SCRAM-SHA-256 PLAIN LOGIN", "RESP-CODES", "AUTH-RESP-CODE",
		"PIPELINING", "EXPIRE NEVER", "UIDL", "IMPLEMENTATION Loft")
	// After login: no USER, SASL or STLS, whose commands are not valid any more.
	c.login(a.Address)
	c.cmd("CAPA").expectBody("+OK Capability list follows",
		"TOP", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER", "UIDL", "IMPLEMENTATION Loft")
}

func TestPOP3CapaWithoutPlaintextPasswords(t *testing.T) {
	ts, _ := withMessages(t, func(o *Options) { o.Plaintext = config.PlaintextNever })
	c := ts.dial()
	// No USER and no SASL mechanism until TLS is on.
	c.cmd("CAPA").expectBody("+OK Capability list follows",
		"TOP", "STLS", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER", "UIDL", "IMPLEMENTATION Loft")
}

func TestPOP3PlaintextPolicyNeverRefusesPasswordsWithoutTLS(t *testing.T) {
	ts, a := withMessages(t, func(o *Options) { o.Plaintext = config.PlaintextNever })
	c := ts.dial()
	c.cmd("USER " + a.Address).expect("-ERR Password login needs TLS on this connection: use STLS first")
	c.cmd("PASS " + testPassword).expect("-ERR Password login needs TLS on this connection: use STLS first")
	c.cmd("AUTH PLAIN " + b64("\x00"+a.Address+"\x00"+testPassword)).expect("-ERR Password login needs TLS on this connection: use STLS first")
	c.cmd("AUTH").expectBody("+OK Mechanisms follow")
	c.starttls()
	c.login(a.Address)
	c.cmd("STAT").expect("+OK 2 113")
	// Implicit TLS is TLS too.
	c2 := ts.dialTLS()
	c2.login(a.Address)
}

func TestPOP3PasswordAllowedByPolicy(t *testing.T) {
	loopback, remote := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.7")
	v6loopback := netip.MustParseAddr("::1")
	for _, tc := range []struct {
		policy string
		remote netip.Addr
		tls    bool
		want   bool
	}{
		{config.PlaintextLoopback, loopback, false, true},
		{config.PlaintextLoopback, v6loopback, false, true},
		{config.PlaintextLoopback, remote, false, false},
		{config.PlaintextLoopback, remote, true, true},
		{"", remote, false, false}, // the default is loopback
		{config.PlaintextNever, loopback, false, false},
		{config.PlaintextNever, remote, true, true},
		{config.PlaintextAlways, remote, false, true},
	} {
		s := &session{srv: &Server{opts: Options{Plaintext: tc.policy}}, remote: tc.remote, tls: tc.tls}
		if got := s.passwordAllowed(); got != tc.want {
			t.Errorf("policy %q from %s, TLS %v: allowed %v, want %v", tc.policy, tc.remote, tc.tls, got, tc.want)
		}
	}
}

func TestPOP3StlsThenLogin(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.dial()
	c.starttls()
	c.cmd("STLS").expect("-ERR TLS is already active")
	c.login(a.Address)
	c.cmd("STAT").expect("+OK 2 113")
	c.cmd("STLS").expect("-ERR STLS is not valid after login")
}

func TestPOP3StlsDiscardsCommandsPipelinedBeforeHandshake(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.dial()
	// "USER" injected behind STLS in plaintext must not count under TLS.
	c.send("STLS\r\nUSER " + a.Address)
	c.expectLine("+OK Begin TLS negotiation")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.cmd("PASS " + testPassword).expect("-ERR Send USER first")
}

func TestPOP3StlsUnavailableWithoutCertificate(t *testing.T) {
	ts, _ := withMessages(t, func(o *Options) { o.TLS = nil })
	c := ts.dial()
	c.cmd("STLS").expect("-ERR STLS is not available on this server")
}

func TestPOP3ImplicitTLS(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.dialTLS()
	c.cmd("STLS").expect("-ERR TLS is already active")
	c.login(a.Address)
	c.cmd("RETR 1").expect("+OK 51 octets").body()
}

func TestPOP3BadPasswordIsAuthError(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.dial()
	c.cmd("USER " + a.Address).expect("+OK Send your password")
	c.cmd("PASS wrong").expect("-ERR [AUTH] Authentication failed")
	c.cmd("STAT").expect("-ERR STAT is not valid before login")
	// An unknown account gets the same answer.
	c.cmd("USER nobody@example.org").expect("+OK Send your password")
	c.cmd("PASS " + testPassword).expect("-ERR [AUTH] Authentication failed")
	// The third failure on one connection closes it.
	c.cmd("AUTH PLAIN " + b64("\x00"+a.Address+"\x00wrong")).expect("-ERR [AUTH] Authentication failed; too many failures, closing the connection")
	c.expectClosed()
	// Others (and the same user, correctly) are not locked out.
	ts.login(a.Address).cmd("STAT").expect("+OK 2 113")
}

func TestPOP3FailedLoginsAreDelayed(t *testing.T) {
	ts, a := withMessages(t, func(o *Options) {
		o.Throttle = auth.NewThrottle(auth.ThrottleOptions{FailureDelay: 150 * time.Millisecond, MaxFailureDelay: time.Second})
	})
	c := ts.dial()
	c.cmd("USER " + a.Address).expect("+OK Send your password")
	start := time.Now()
	c.cmd("PASS wrong").expect("-ERR [AUTH] Authentication failed")
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("first failure answered after %v, want at least 150ms", d)
	}
	c.cmd("USER " + a.Address).expect("+OK Send your password")
	start = time.Now()
	c.cmd("PASS wrong again").expect("-ERR [AUTH] Authentication failed")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("second failure answered after %v, want at least 300ms (doubled)", d)
	}
}

func TestPOP3CorrectLoginNotSlowedByOthersFailures(t *testing.T) {
	throttle := auth.NewThrottle(auth.ThrottleOptions{FailureDelay: 20 * time.Second, MaxFailureDelay: 20 * time.Second})
	ts, a := withMessages(t, func(o *Options) { o.Throttle = throttle })
	// Someone has been failing at this account, from this very address.
	for range 10 {
		throttle.Failed(netip.MustParseAddr("127.0.0.1"), a.Address)
	}
	start := time.Now()
	ts.login(a.Address).cmd("STAT").expect("+OK 2 113")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a correct login took %v", d)
	}
}

func TestPOP3AuthPlain(t *testing.T) {
	ts, a := withMessages(t, nil)
	// With an initial response (RFC 5034 §4).
	c := ts.dial()
	c.cmd("AUTH PLAIN " + b64("\x00"+a.Address+"\x00"+testPassword)).expect("+OK alice@example.org has 2 messages (113 octets)")
	c.cmd("STAT").expect("+OK 2 113")

	// Without: an empty challenge first; the authorization identity may
	// repeat the login name.
	c = ts.dial()
	c.cmd("AUTH plain").expect("+ ")
	c.cmd(b64(a.Address + "\x00" + a.Address + "\x00" + testPassword)).expect("+OK alice@example.org has 2 messages (113 octets)")

	// Acting as someone else is refused.
	c = ts.dial()
	c.cmd("AUTH PLAIN " + b64("bob@example.org\x00"+a.Address+"\x00"+testPassword)).expect("-ERR [AUTH] Authentication failed")
	// Cancelled, malformed, unknown.
	c.cmd("AUTH PLAIN").expect("+ ")
	c.cmd("*").expect("-ERR Authentication cancelled")
	c.cmd("AUTH PLAIN !!!").expect("-ERR Invalid base64 in the SASL exchange")
	c.cmd("AUTH CRAM-MD5").expect("-ERR Unsupported authentication mechanism")
	c.cmd("AUTH").expectBody("+OK Mechanisms follow", "SCRAM-SHA-256", "PLAIN", "LOGIN")
	c.cmd("NOOP").expect("-ERR NOOP is not valid before login")
}

func TestPOP3AuthLogin(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.dial()
	c.cmd("AUTH LOGIN").expect("+ " + b64("Username:"))
	c.cmd(b64(a.Address)).expect("+ " + b64("Password:"))
	c.cmd(b64(testPassword)).expect("+OK alice@example.org has 2 messages (113 octets)")

	c = ts.dial()
	c.cmd("AUTH LOGIN " + b64(a.Address)).expect("+ " + b64("Password:"))
	c.cmd(b64("wrong")).expect("-ERR [AUTH] Authentication failed")
}

func TestPOP3AuthLongSASLResponse(t *testing.T) {
	// SASL responses may exceed the command-line limit (RFC 5034 §4).
	ts, a := withMessages(t, nil)
	c := ts.dial()
	c.cmd("AUTH PLAIN").expect("+ ")
	long := strings.Repeat("x", 1000)
	c.cmd(b64("\x00" + a.Address + "\x00" + long)).expect("-ERR [AUTH] Authentication failed")
}

func TestPOP3ServerFailureIsSysTemp(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.dial()
	c.cmd("USER " + a.Address).expect("+OK Send your password")
	ts.st.Close() // the database goes away
	c.cmd("PASS " + testPassword).expect("-ERR [SYS/TEMP] Internal server error; try again later")
}
