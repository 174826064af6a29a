// The test harness: a real store in a temp dir, the POP3 server on
// 127.0.0.1 ephemeral ports (plain and implicit TLS), and a client that
// speaks POP3 line by line so tests read like transcripts:
//
//	c.cmd("STAT").expect("+OK 2 310")

package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"loft/internal/auth"
	"loft/internal/certs"
	"loft/internal/config"
	"loft/internal/store"
)

const testPassword = "correct horse"

// testServer is a running POP3 server on a fresh store.
type testServer struct {
	t       *testing.T
	dir     string
	st      *store.Store
	srv     *Server
	opts    Options
	addr    string // plain listener (STLS available)
	tlsAddr string // implicit TLS listener
}

// startServer starts a server with test defaults (plaintext allowed on
// loopback, mark_seen on, a throttle of milliseconds), changed by edit.
func startServer(t *testing.T, edit func(*Options)) *testServer {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, DefaultQuota: store.Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig, err := certs.Config("", "", dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, dir: dir, st: st}
	ts.opts = Options{
		TLS:       tlsConfig,
		Hostname:  "pop.test",
		Plaintext: config.PlaintextLoopback,
		MarkSeen:  true,
		Throttle: auth.NewThrottle(auth.ThrottleOptions{
			FailureDelay: time.Millisecond, MaxFailureDelay: 4 * time.Millisecond}),
	}
	if edit != nil {
		edit(&ts.opts)
	}
	ts.serve()
	t.Cleanup(func() {
		ts.srv.Close()
		ts.st.Close()
	})
	return ts
}

// serve starts a server on ts.st with ts.opts.
func (ts *testServer) serve() {
	ts.t.Helper()
	ts.opts.Store = ts.st
	ts.srv = New(ts.opts)
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ts.t.Fatal(err)
	}
	implicit, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.addr, ts.tlsAddr = plain.Addr().String(), implicit.Addr().String()
	go ts.srv.Serve(plain)
	go ts.srv.ImplicitTLS().Serve(implicit)
}

// restart stops the server and the store, opens the store again from its
// directory and starts a new server: what a restart of loft serve does.
func (ts *testServer) restart() {
	ts.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		ts.t.Fatal(err)
	}
	ts.st.Close()
	st, err := store.Open(context.Background(), store.Options{Dir: ts.dir, DefaultQuota: store.Unlimited})
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.st = st
	ts.serve()
}

// addAccount creates an account with testPassword.
func (ts *testServer) addAccount(address string) *store.Account {
	ts.t.Helper()
	hash, err := auth.HashPassword(testPassword)
	if err != nil {
		ts.t.Fatal(err)
	}
	a, err := ts.st.CreateAccount(context.Background(), address, hash, nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	return a
}

// deliver stores msg in the INBOX of address and returns its UID.
func (ts *testServer) deliver(address, msg string) uint32 {
	ts.t.Helper()
	res, err := ts.st.Deliver(context.Background(), strings.NewReader(msg),
		store.DeliverOptions{Recipients: []string{address}})
	if err != nil {
		ts.t.Fatal(err)
	}
	if res[0].Err != nil {
		ts.t.Fatal(res[0].Err)
	}
	return res[0].UID
}

// inbox returns an account's INBOX and its messages as the store has them.
func (ts *testServer) inbox(a *store.Account) (*store.Mailbox, []store.MessageInfo) {
	ts.t.Helper()
	mb, err := ts.st.Mailbox(context.Background(), a.ID, "INBOX")
	if err != nil {
		ts.t.Fatal(err)
	}
	msgs, err := ts.st.Messages(context.Background(), a.ID, mb.ID)
	if err != nil {
		ts.t.Fatal(err)
	}
	return mb, msgs
}

// usage returns an account's quota usage.
func (ts *testServer) usage(a *store.Account) int64 {
	ts.t.Helper()
	acct, err := ts.st.AccountByID(context.Background(), a.ID)
	if err != nil {
		ts.t.Fatal(err)
	}
	return acct.Usage
}

// client is a POP3 client for tests.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// dial connects to the plain listener and checks the greeting.
func (ts *testServer) dial() *client {
	ts.t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		ts.t.Fatal(err)
	}
	return newClient(ts.t, conn)
}

// dialTLS connects to the implicit-TLS listener and checks the greeting.
func (ts *testServer) dialTLS() *client {
	ts.t.Helper()
	conn, err := tls.Dial("tcp", ts.tlsAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		ts.t.Fatal(err)
	}
	return newClient(ts.t, conn)
}

func newClient(t *testing.T, conn net.Conn) *client {
	t.Helper()
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { conn.Close() })
	c.expectLine("+OK pop.test Loft POP3 server ready")
	return c
}

// login logs in with USER and PASS and checks the +OK.
func (ts *testServer) login(address string) *client {
	ts.t.Helper()
	c := ts.dial()
	c.login(address)
	return c
}

func (c *client) login(address string) {
	c.t.Helper()
	c.cmd("USER " + address).expect("+OK Send your password")
	c.cmd("PASS " + testPassword).expectPrefix("+OK " + strings.ToLower(address) + " has ")
}

// send writes a raw line (CRLF added).
func (c *client) send(line string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// response is the first line of a response, for expectations.
type response struct {
	c    *client
	cmd  string
	line string
}

// cmd sends a command and reads the first line of the response.
func (c *client) cmd(line string) *response {
	c.t.Helper()
	c.send(line)
	return &response{c: c, cmd: line, line: c.readLine()}
}

// readLine reads one line without its CRLF; it fails the test on EOF.
func (c *client) readLine() string {
	c.t.Helper()
	line, err := c.readLineErr()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return line
}

func (c *client) readLineErr() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return line, err
	}
	if !strings.HasSuffix(line, "\r\n") {
		c.t.Fatalf("line %q does not end with CRLF", line)
	}
	return strings.TrimSuffix(line, "\r\n"), nil
}

func (c *client) expectLine(want string) {
	c.t.Helper()
	if got := c.readLine(); got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// expect checks the first line exactly.
func (r *response) expect(want string) *response {
	r.c.t.Helper()
	if r.line != want {
		r.c.t.Fatalf("%s: got %q, want %q", r.cmd, r.line, want)
	}
	return r
}

// expectPrefix checks the start of the first line.
func (r *response) expectPrefix(want string) *response {
	r.c.t.Helper()
	if !strings.HasPrefix(r.line, want) {
		r.c.t.Fatalf("%s: got %q, want it to start with %q", r.cmd, r.line, want)
	}
	return r
}

// body reads the rest of a multi-line response up to its terminating ".",
// as sent (still dot-stuffed).
func (r *response) body() []string {
	r.c.t.Helper()
	var lines []string
	for {
		line := r.c.readLine()
		if line == "." {
			return lines
		}
		lines = append(lines, line)
	}
}

// expectBody checks the first line and then every line of the multi-line
// body, as sent.
func (r *response) expectBody(first string, lines ...string) {
	r.c.t.Helper()
	r.expect(first)
	got := r.body()
	if strings.Join(got, "\n") != strings.Join(lines, "\n") {
		r.c.t.Fatalf("%s: body\n%q\nwant\n%q", r.cmd, got, lines)
	}
}

// expectClosed checks that the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	line, err := c.readLineErr()
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if !(errors.As(err, &ne) && !ne.Timeout()) {
			c.t.Fatalf("want the connection closed, got %q, %v", line, err)
		}
	}
}

// Test messages and their sizes as stored (CRLF).
const (
	msgA = "From: alice@example.org\r\nSubject: first\r\n\r\nHello.\r\n"
	msgB = "From: bob@example.org\r\nSubject: second\r\n\r\nLine one\r\nLine two\r\n"
	msgC = "From: carol@example.org\r\nSubject: third\r\n\r\nThird body\r\n"
)

// withMessages creates alice@example.org with msgA and msgB.
func withMessages(t *testing.T, edit func(*Options)) (*testServer, *store.Account) {
	t.Helper()
	ts := startServer(t, edit)
	a := ts.addAccount("alice@example.org")
	ts.deliver(a.Address, msgA)
	ts.deliver(a.Address, msgB)
	return ts, a
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
