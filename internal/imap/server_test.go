package imap

// The test harness: a store in a temp directory, the Server on an
// ephemeral port of 127.0.0.1, and a line-level client that asserts
// responses like a transcript. A wanted line is compared exactly unless it
// starts with "re:", then it is a regular expression for the whole line.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"loft/internal/auth"
	"loft/internal/certs"
	"loft/internal/store"
)

const (
	testUser = "alice@example.org"
	testPass = "s3cret pass"
)

var (
	hashOnce sync.Once
	testHash string
)

type testServer struct {
	t    testing.TB
	st   *store.Store
	srv  *Server
	addr string
	acct *store.Account
}

func newTestServer(t testing.TB, opts ...func(*Options)) *testServer {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: t.TempDir(), DefaultQuota: store.Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	hashOnce.Do(func() {
		testHash, err = auth.HashPassword(testPass)
	})
	if err != nil {
		t.Fatal(err)
	}
	acct, err := st.CreateAccount(context.Background(), testUser, testHash, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Hostname: "test",
		Throttle: auth.NewThrottle(auth.ThrottleOptions{FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond}),
	}
	for _, f := range opts {
		f(&o)
	}
	srv := New(st, o)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		st.Close()
	})
	return &testServer{t: t, st: st, srv: srv, addr: l.Addr().String(), acct: acct}
}

// deliver stores a message in INBOX as SMTP would.
func (ts *testServer) deliver(msg string) {
	ts.t.Helper()
	res, err := ts.st.Deliver(context.Background(), strings.NewReader(msg), store.DeliverOptions{Recipients: []string{testUser}})
	if err != nil || res[0].Err != nil {
		ts.t.Fatalf("deliver: %v %v", err, res)
	}
}

type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func (ts *testServer) dial() *client {
	ts.t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { conn.Close() })
	c := &client{t: ts.t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("re:^\\* OK \\[CAPABILITY IMAP4rev2 IMAP4rev1 .*\\] Loft IMAP ready$")
	return c
}

// login dials and logs in; with rev2, IMAP4rev2 is enabled too.
func (ts *testServer) login(rev2 bool) *client {
	ts.t.Helper()
	c := ts.dial()
	c.send(`L1 LOGIN ` + testUser + ` "` + testPass + `"`)
	c.expect(`re:^L1 OK \[CAPABILITY .*\] Logged in$`)
	if rev2 {
		c.cmd("E1 ENABLE IMAP4rev2", "* ENABLED IMAP4rev2", "E1 OK ENABLE completed")
	}
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

func (c *client) sendRaw(data string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, data); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

var literalAtEnd = regexp.MustCompile(`~?\{(\d+)\}$`)

// readResponse reads one response line, with the data of any literals it
// carries inline.
func (c *client) readResponse(timeout time.Duration) (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return b.String() + line, err
		}
		line = strings.TrimSuffix(line, "\r\n")
		b.WriteString(line)
		var m []string
		if strings.HasSuffix(line, "}") { // the regexp is slow on long lines
			m = literalAtEnd.FindStringSubmatch(line)
		}
		if m == nil || strings.HasPrefix(line, "+ ") {
			return b.String(), nil
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return b.String(), err
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.readResponse(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return l
}

func matches(want, got string) bool {
	if re, ok := strings.CutPrefix(want, "re:"); ok {
		return regexp.MustCompile(re).MatchString(got)
	}
	return want == got
}

// expect reads one response per wanted line and compares.
func (c *client) expect(want ...string) {
	c.t.Helper()
	for i, w := range want {
		got := c.line()
		if !matches(w, got) {
			c.t.Fatalf("response %d:\n got: %q\nwant: %q", i+1, got, w)
		}
	}
}

// cmd sends a command and expects exactly the given responses.
func (c *client) cmd(line string, want ...string) {
	c.t.Helper()
	c.send(line)
	c.expect(want...)
}

// run sends a command and returns its responses up to the tagged one.
func (c *client) run(line string) []string {
	c.t.Helper()
	c.send(line)
	tag, _, _ := strings.Cut(line, " ")
	var out []string
	for range 10000000 {
		l := c.line()
		out = append(out, l)
		if strings.HasPrefix(l, tag+" ") {
			return out
		}
	}
	c.t.Fatal("no tagged response")
	return nil
}

// expectNothing checks that no response arrives within d.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	l, err := c.readResponse(d)
	if err == nil {
		c.t.Fatalf("unexpected response %q", l)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		c.t.Fatalf("read: %v", err)
	}
	// A timed-out read may have consumed part of a line; none was sent.
	if l != "" {
		c.t.Fatalf("partial response %q", l)
	}
}

const sampleMsg = "From: Bob <bob@example.net>\r\n" +
	"To: alice@example.org\r\n" +
	"Subject: Hello\r\n" +
	"Date: Mon, 2 Jan 2023 15:04:05 +0000\r\n" +
	"Message-ID: <1@example.net>\r\n" +
	"\r\n" +
	"Hi Alice,\r\nhow are you?\r\n"

func TestGreetingCapabilityLogout(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	c.cmd("a CAPABILITY",
		"re:^\\* CAPABILITY IMAP4rev2 IMAP4rev1 AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN SASL-IR LITERAL\\+ .* CONDSTORE QRESYNC COMPRESS=DEFLATE NOTIFY .* APPENDLIMIT=64000000 QUOTA QUOTA=RES-STORAGE( .*)?$",
		"a OK CAPABILITY completed")
	c.cmd("b NOOP", "b OK NOOP completed")
	c.cmd("c LOGOUT", "* BYE Logging out", "c OK LOGOUT completed")
}

func TestLoginFailsThenSucceeds(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	c.cmd("a LOGIN alice@example.org wrong", "a NO [AUTHENTICATIONFAILED] Authentication failed")
	c.cmd("b LOGIN nobody@example.org x", "b NO [AUTHENTICATIONFAILED] Authentication failed")
	c.cmd("c SELECT INBOX", "c BAD SELECT is not allowed in the not authenticated state")
	c.cmd(`d LOGIN ALICE@example.org "s3cret pass"`, "re:^d OK \\[CAPABILITY IMAP4rev2 IMAP4rev1 SASL-IR .*\\] Logged in$")
	c.cmd("e LOGIN a b", "e BAD LOGIN is not allowed in the authenticated state")
}

func TestLoginClosedAfterRepeatedFailures(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	for i := range DefaultMaxAuthFailures {
		c.cmd(fmt.Sprintf("a%d LOGIN alice@example.org wrong", i), fmt.Sprintf("a%d NO [AUTHENTICATIONFAILED] Authentication failed", i))
	}
	if l, err := c.readResponse(2 * time.Second); err != io.EOF {
		t.Fatalf("connection still open: %q %v", l, err)
	}
}

func TestAuthenticatePlainAndLogin(t *testing.T) {
	ts := newTestServer(t)
	plain := b64("\x00" + testUser + "\x00" + testPass)
	c := ts.dial()
	c.cmd("a AUTHENTICATE PLAIN "+plain, "re:^a OK \\[CAPABILITY .*\\] Logged in$")

	c = ts.dial()
	c.cmd("a AUTHENTICATE PLAIN", "+ ")
	c.cmd(plain, "re:^a OK \\[CAPABILITY .*\\] Logged in$")

	c = ts.dial()
	c.cmd("a AUTHENTICATE LOGIN", "+ "+b64("Username:"))
	c.cmd(b64(testUser), "+ "+b64("Password:"))
	c.cmd(b64(testPass), "re:^a OK \\[CAPABILITY .*\\] Logged in$")

	c = ts.dial()
	c.cmd("a AUTHENTICATE PLAIN", "+ ")
	c.cmd("*", "a BAD Authentication cancelled")
	c.cmd("b AUTHENTICATE CRAM-MD5", "b NO [CANNOT] Unsupported authentication mechanism")
	c.cmd("c AUTHENTICATE PLAIN "+b64("\x00"+testUser+"\x00nope"), "c NO [AUTHENTICATIONFAILED] Authentication failed")
}

func TestPlaintextRefusedWhereNotAllowed(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Plaintext = "never" })
	c := ts.dial()
	c.cmd("a CAPABILITY", "re:^\\* CAPABILITY IMAP4rev2 IMAP4rev1 LOGINDISABLED SASL-IR .*$", "a OK CAPABILITY completed")
	c.cmd("b LOGIN "+testUser+` "`+testPass+`"`, "b NO [PRIVACYREQUIRED] Use STARTTLS first")
	c.cmd("c AUTHENTICATE PLAIN "+b64("\x00"+testUser+"\x00"+testPass), "c NO [PRIVACYREQUIRED] Use STARTTLS first")
}

func TestIDAndNamespace(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	c.cmd(`a ID ("name" "test" "version" NIL)`, `* ID ("name" "Loft" "vendor" "Loft")`, "a OK ID completed")
	c.cmd(`b ID NIL`, `* ID ("name" "Loft" "vendor" "Loft")`, "b OK ID completed")
	c = ts.login(false)
	c.cmd("c NAMESPACE", `* NAMESPACE (("" "/")) NIL NIL`, "c OK NAMESPACE completed")
}

func TestIdleTimeoutLogsOut(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	c := ts.login(false)
	c.expect("* BYE Autologout; idle for too long")
}

func TestShutdownSaysBye(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	go ts.srv.Shutdown(context.Background())
	c.expect("* BYE Server shutting down")
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestStartTLS(t *testing.T) {
	cfg, err := certs.Config("", "", t.TempDir(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(o *Options) { o.TLS = cfg; o.Plaintext = "never" })
	c := ts.dial()
	c.cmd("a CAPABILITY", "re:^\\* CAPABILITY IMAP4rev2 IMAP4rev1 STARTTLS LOGINDISABLED SASL-IR .*$", "a OK CAPABILITY completed")
	c.cmd("b STARTTLS", "b OK Begin TLS negotiation now")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.cmd("c CAPABILITY", "re:^\\* CAPABILITY IMAP4rev2 IMAP4rev1 AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN SASL-IR .*$", "c OK CAPABILITY completed")
	c.cmd("d STARTTLS", "d BAD TLS not available")
	c.cmd("e LOGIN "+testUser+` "`+testPass+`"`, `re:^e OK \[CAPABILITY .*\] Logged in$`)

	// Commands pipelined after STARTTLS are not run.
	c = ts.dial()
	c.send("f STARTTLS\r\ng LOGIN x y")
	c.expect("f BAD Data after STARTTLS")
}
