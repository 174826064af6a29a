// End-to-end tests of the built `loft` binary: the quickstart, the one-line
// startup errors (bad config, port taken, data dir locked) and the CLI
// contract of DESIGN.md §4, with the account and quota commands run beside
// a live `loft serve` and their effect seen over SMTP at once.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"loft/internal/auth"
	"loft/internal/store"
)

// loftBin is the binary under test, built once by TestMain.
var loftBin string

// Bounds, so that a hung server fails the test instead of hanging it.
const (
	cmdTimeout   = 30 * time.Second // one CLI command
	startTimeout = 10 * time.Second // `loft serve` until its listeners are printed
	stopTimeout  = 5 * time.Second  // SIGTERM until exit ("promptly")
	netTimeout   = 5 * time.Second  // one SMTP/LMTP command
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loft-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by all: a test runs the binary as another user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	loftBin = filepath.Join(dir, "loft")
	build := exec.Command("go", "build", "-o", loftBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "go build -o %s .: %v\n", loftBin, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is the test process's environment without LOFT_CONFIG (so that the
// caller's shell cannot change what a test runs), plus extra.
func env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOFT_CONFIG=") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// result is a finished CLI command.
type result struct {
	stdout, stderr string
	code           int
}

// cli is how to invoke `loft`: where, with what environment and stdin.
type cli struct {
	dir   string   // working directory; "" for the test's
	env   []string // extra environment
	stdin string
	// cred, if set, runs loft as that user (root's tests use it to meet
	// a permission error).
	cred *syscall.Credential
}

func (r cli) loft(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, loftBin, args...)
	cmd.Dir = r.dir
	cmd.Env = env(r.env...)
	cmd.Stdin = strings.NewReader(r.stdin)
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("loft %s: still running after %v; stderr: %s", strings.Join(args, " "), cmdTimeout, stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("loft %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// ok runs a command that must succeed.
func (r cli) ok(t *testing.T, args ...string) string {
	t.Helper()
	res := r.loft(t, args...)
	if res.code != 0 {
		t.Fatalf("loft %s: exit %d, stderr: %s", strings.Join(args, " "), res.code, res.stderr)
	}
	return res.stdout
}

// fails runs a command that must fail with a one-line reason containing
// each of want, and returns that line.
func (r cli) fails(t *testing.T, args []string, want ...string) string {
	t.Helper()
	res := r.loft(t, args...)
	if res.code == 0 {
		t.Fatalf("loft %s: exit 0, want failure; stdout: %s", strings.Join(args, " "), res.stdout)
	}
	return oneLineWith(t, "loft "+strings.Join(args, " "), res.stderr, want...)
}

// oneLineWith checks that stderr is exactly one line containing each of
// want.
func oneLineWith(t *testing.T, what, stderr string, want ...string) string {
	t.Helper()
	line := strings.TrimRight(stderr, "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Errorf("%s: stderr is not one line:\n%s", what, stderr)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("%s: stderr %q does not mention %q", what, line, w)
		}
	}
	return line
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveProc is a running `loft serve`.
type serveProc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	exited         chan struct{} // closed when the process has exited
	// listeners maps a listener's name ("smtp", "lmtp") to the address
	// the server printed for it.
	listeners map[string]string
}

var listenerLine = regexp.MustCompile(`(?m)^  (\w+) +(\S+)$`)

// serve starts `loft serve args...` in dir and waits until it has printed
// the listeners named in want. It fails the test if the server exits or
// takes longer than startTimeout.
func serve(t *testing.T, r cli, want []string, args ...string) *serveProc {
	t.Helper()
	s := &serveProc{t: t, exited: make(chan struct{})}
	s.cmd = exec.Command(loftBin, append([]string{"serve"}, args...)...)
	s.cmd.Dir = r.dir
	s.cmd.Env = env(r.env...)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	deadline := time.Now().Add(startTimeout)
	for {
		out := s.stdout.String()
		if i := strings.Index(out, "Loft is running"); i >= 0 {
			s.listeners = map[string]string{}
			for _, m := range listenerLine.FindAllStringSubmatch(out[i:], -1) {
				s.listeners[m[1]] = m[2]
			}
			missing := false
			for _, name := range want {
				if s.listeners[name] == "" {
					missing = true
				}
			}
			if !missing {
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("loft serve exited with %d before it was ready\nstdout: %s\nstderr: %s",
				s.cmd.ProcessState.ExitCode(), s.stdout.String(), s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("loft serve: listeners %v not printed within %v\nstdout: %s\nstderr: %s",
				want, startTimeout, s.stdout.String(), s.stderr.String())
		}
	}
}

// stop sends SIGTERM and checks that the server exits with status 0 within
// stopTimeout.
func (s *serveProc) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		s.t.Fatalf("loft serve still running %v after SIGTERM\nstderr: %s", stopTimeout, s.stderr.String())
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Fatalf("loft serve exited with %d after SIGTERM, want 0\nstderr: %s", code, s.stderr.String())
	}
}

// writeConfig writes a config file for a test server: SMTP and LMTP on free
// loopback ports, domain example.test, data in dir/data, default quota
// 50MB (not the built-in default, so that "default" is visible), plus
// extra TOML lines.
func writeConfig(t *testing.T, dir string, extra string) (path, dataDir string) {
	t.Helper()
	dataDir = filepath.Join(dir, "data")
	path = filepath.Join(dir, "loft.toml")
	cfg := fmt.Sprintf(`hostname = "mx.example.test"
domains = ["example.test"]
data_dir = %q

[listen]
smtp = "127.0.0.1:0"
lmtp = "127.0.0.1:0"

[quota]
default = "50MB"
%s`, dataDir, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, dataDir
}

// greeting connects to addr and returns its greeting, which must be 220.
// httpGet returns the body of a 200 answer to GET url.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: netTimeout}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}

func greeting(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, netTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(netTimeout))
	_, msg, err := textproto.NewConn(conn).ReadResponse(220)
	if err != nil {
		t.Fatalf("greeting of %s: %v", addr, err)
	}
	return msg
}

// dial opens an SMTP (or LMTP) session to addr, after EHLO (LHLO).
func dial(t *testing.T, addr string, lmtp bool) *gosmtp.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, netTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	var c *gosmtp.Client
	if lmtp {
		c = gosmtp.NewClientLMTP(conn)
	} else {
		c = gosmtp.NewClient(conn)
	}
	c.CommandTimeout, c.SubmissionTimeout = netTimeout, netTimeout
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatalf("hello to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send runs one transaction (with SIZE=size if size > 0) and returns the
// command that was refused ("MAIL", "RCPT" or "DATA") and its error; nil
// when the message got 250.
func send(c *gosmtp.Client, size int64, rcpt string, msg []byte) (string, error) {
	var opts *gosmtp.MailOptions
	if size > 0 {
		opts = &gosmtp.MailOptions{Size: size}
	}
	if err := c.Mail("sender@example.net", opts); err != nil {
		return "MAIL", err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		c.Reset()
		return "RCPT", err
	}
	w, err := c.Data()
	if err != nil {
		return "DATA", err
	}
	if _, err := w.Write(msg); err != nil {
		return "DATA", err
	}
	return "DATA", w.Close()
}

// mustSend delivers msg, which must get 250.
func mustSend(t *testing.T, c *gosmtp.Client, size int64, rcpt string, msg []byte) {
	t.Helper()
	if stage, err := send(c, size, rcpt, msg); err != nil {
		t.Fatalf("delivery to %s (SIZE=%d): %s: %v", rcpt, size, stage, err)
	}
}

// wantReply checks that a transaction was refused at stage with the reply
// code and enhanced code given.
func wantReply(t *testing.T, what, stage string, err error, wantStage string, code int, enh gosmtp.EnhancedCode) {
	t.Helper()
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("%s: %s: got %v, want %d %v at %s", what, stage, err, code, enh, wantStage)
	}
	if stage != wantStage || se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("%s: got %d %v %q at %s, want %d %v at %s",
			what, se.Code, se.EnhancedCode, se.Message, stage, code, enh, wantStage)
	}
}

// testMessage is a message of at least size bytes with CRLF line endings.
func testMessage(subject string, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <sender@example.net>\r\nSubject: %s\r\nMessage-ID: <%s@example.net>\r\n\r\n",
		subject, strings.ReplaceAll(subject, " ", "."))
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "line %d of %s: the quick brown fox jumps over the lazy dog\r\n", i, subject)
	}
	return b.Bytes()
}

// listRow is one row of `loft account list`.
type listRow struct {
	Address, Messages, Usage, Quota, Used string
}

// accountList runs `loft account list` and parses its table by the
// header's column positions (a quota like "50 MB (default)" has spaces).
func accountList(t *testing.T, r cli, args ...string) map[string]listRow {
	t.Helper()
	out := r.ok(t, append([]string{"account", "list"}, args...)...)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	cols := []string{"ADDRESS", "MESSAGES", "USAGE", "QUOTA", "USED"}
	var starts []int
	for _, c := range cols {
		i := strings.Index(lines[0], c)
		if i < 0 {
			t.Fatalf("account list: header %q lacks column %s", lines[0], c)
		}
		starts = append(starts, i)
	}
	rows := map[string]listRow{}
	for _, l := range lines[1:] {
		field := func(i int) string {
			end := len(l)
			if i+1 < len(starts) {
				end = min(starts[i+1], len(l))
			}
			if starts[i] >= end {
				return ""
			}
			return strings.TrimSpace(l[starts[i]:end])
		}
		row := listRow{field(0), field(1), field(2), field(3), field(4)}
		rows[row.Address] = row
	}
	return rows
}

// openTestStore opens the data directory's store from the test process, as
// the CLI does beside a running server.
func openTestStore(t *testing.T, dataDir string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: dataDir, DefaultQuota: 50_000_000})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// passwordHash reads an account's stored hash.
func passwordHash(t *testing.T, dataDir, addr string) string {
	t.Helper()
	st := openTestStore(t, dataDir)
	defer st.Close()
	_, hash, err := st.PasswordHash(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

// verify reports whether password matches hash.
func verify(t *testing.T, hash, password string) bool {
	t.Helper()
	ok, err := auth.VerifyPassword(hash, password)
	if err != nil {
		t.Fatalf("verify password: %v", err)
	}
	return ok
}

// bodyFiles counts the message body files under dataDir/blobs.
func bodyFiles(t *testing.T, dataDir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(dataDir, "blobs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !strings.HasSuffix(path, ".tmp") {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// quickstartPorts are the fixed listener ports of DESIGN.md §4, and the
// metrics endpoint's (docs/CONFIG.md).
var quickstartPorts = []int{2525, 2424, 1143, 1993, 1110, 1995, 9465}

// TestQuickstart runs the README's first command, `loft serve` without a
// config, in a fresh directory: it creates ./loft-data with the store and a
// certificate, prints postmaster@localhost's password once and its
// listeners, answers on SMTP and LMTP, stores mail that `loft account list`
// (also without a config) then shows, and stops with status 0 on SIGTERM.
func TestQuickstart(t *testing.T) {
	// The quickstart's ports are fixed; on a busy machine (another loft,
	// another test run) they may be taken. Say so plainly rather than
	// failing obscurely or skipping silently.
	for _, port := range quickstartPorts {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("quickstart port 127.0.0.1:%d is in use (%v): this test runs `loft serve` without a config, "+
				"which listens on the fixed ports %v of DESIGN.md §4; stop whatever holds it (another loft serve or test run?)",
				port, err, quickstartPorts)
		}
		l.Close()
	}
	dir := t.TempDir()
	r := cli{dir: dir}
	start := time.Now()
	s := serve(t, r, []string{"smtp", "lmtp"})

	out := s.stdout.String()
	m := regexp.MustCompile(`(?m)^Created postmaster@localhost with password: (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no password line in the first start's output:\n%s", out)
	}
	password := m[1]
	for name, addr := range map[string]string{"smtp": "127.0.0.1:2525", "lmtp": "127.0.0.1:2424", "metrics": "127.0.0.1:9465"} {
		if s.listeners[name] != addr {
			t.Errorf("listener %s on %q, want %s; output:\n%s", name, s.listeners[name], addr, out)
		}
	}
	for _, addr := range []string{"127.0.0.1:2525", "127.0.0.1:2424"} {
		greeting(t, addr)
	}
	dataDir := filepath.Join(dir, "loft-data")
	if fi, err := os.Stat(filepath.Join(dataDir, "loft.db")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("loft-data/loft.db: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "tls")); err != nil || !fi.IsDir() {
		t.Errorf("loft-data/tls: %v", err)
	}

	msg := testMessage("quickstart", 500)
	c := dial(t, "127.0.0.1:2424", true)
	mustSend(t, c, 0, "postmaster@localhost", msg)
	rows := accountList(t, r)
	pm, ok := rows["postmaster@localhost"]
	if !ok || pm.Messages != "1" {
		t.Fatalf("account list after one delivery: %+v, want postmaster@localhost with 1 message", rows)
	}
	if pm.Quota != "200 MB (default)" {
		t.Errorf("account list: postmaster@localhost's quota %q, want the default 200 MB", pm.Quota)
	}
	if usage, _ := strconv.Atoi(pm.Usage); usage <= len(msg) {
		t.Errorf("account list: usage %q, want more than the %d bytes sent (trace headers are added)", pm.Usage, len(msg))
	}
	// The quickstart serves its metrics on loopback, and they saw the
	// delivery.
	metrics := httpGet(t, "http://127.0.0.1:9465/metrics")
	for _, want := range []string{
		`loft_deliveries_total{outcome="accepted",proto="lmtp"} 1`,
		"loft_quota_used_bytes " + pm.Usage + "\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("quickstart metrics lack %q", want)
		}
	}
	c.Quit()
	s.stop()

	if !verify(t, passwordHash(t, dataDir, "postmaster@localhost"), password) {
		t.Errorf("the printed password does not match postmaster@localhost's stored hash")
	}

	// A second start keeps the account and prints no new password.
	s = serve(t, r, []string{"smtp", "lmtp"})
	if out := s.stdout.String(); strings.Contains(strings.ToLower(out), "password") {
		t.Errorf("second start printed a password:\n%s", out)
	}
	greeting(t, "127.0.0.1:2525")
	s.stop()
	if rows := accountList(t, r); len(rows) != 1 || rows["postmaster@localhost"].Messages != "1" {
		t.Errorf("account list after restart: %+v, want only postmaster@localhost with 1 message", rows)
	}
	t.Logf("quickstart: two starts and stops in %v", time.Since(start).Round(time.Millisecond))
}

// TestBadConfigIsOneLine: a config the server cannot use stops `loft`
// before anything starts, with a one-line reason naming the file and the
// key, and a non-zero status, for every command.
func TestBadConfigIsOneLine(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name   string
		config string // file content; "" for cases that set up path themselves
		want   []string
	}{
		{"unknown key", "[quota]\ndefualt = \"1MB\"\n", []string{"quota.defualt", "unknown"}},
		{"unknown table", "[lisen]\nsmtp = \":25\"\n", []string{"lisen"}},
		{"bad size", "[quota]\ndefault = \"12 parsecs\"\n", []string{"quota.default"}},
		{"negative size", "[smtp]\nmax_message_size = \"-5MB\"\n", []string{"smtp.max_message_size"}},
		{"address without port", "[listen]\nsmtp = \"127.0.0.1\"\n", []string{"listen.smtp"}},
		{"port out of range", "[listen]\nlmtp = \"127.0.0.1:99999\"\n", []string{"listen.lmtp"}},
		{"bad domain", "domains = [\"exa mple.test\"]\n", []string{"domains"}},
		{"wrong type", "[pop3]\nexclusive = \"yes\"\n", []string{"pop3.exclusive"}},
		{"syntax error", "hostname = \n", []string{"line 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".toml")
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			want := append([]string{path}, tc.want...)
			cli{dir: dir}.fails(t, []string{"serve", "--config", path}, want...)
			cli{dir: dir, env: []string{"LOFT_CONFIG=" + path}}.fails(t, []string{"account", "list"}, want...)
		})
	}

	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(dir, "no-such.toml")
		cli{dir: dir}.fails(t, []string{"serve", "--config", path}, path, "no such file")
	})
	t.Run("directory", func(t *testing.T) {
		path := filepath.Join(dir, "a-directory.toml")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		cli{dir: dir}.fails(t, []string{"serve", "--config", path}, path)
	})
	t.Run("unreadable file", func(t *testing.T) {
		// Mode 000 stops every user but root; as root, run loft as
		// nobody, in a directory that user may enter.
		udir, err := os.MkdirTemp("", "loft-unreadable-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(udir) })
		if err := os.Chmod(udir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(udir, "unreadable.toml")
		if err := os.WriteFile(path, []byte("hostname = \"x.example.test\"\n"), 0o000); err != nil {
			t.Fatal(err)
		}
		r := cli{dir: udir}
		if os.Geteuid() == 0 {
			r.cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		}
		r.fails(t, []string{"serve", "--config", path}, path, "permission denied")
	})
}

// TestPortInUseIsOneLine: a listener that cannot bind stops `loft serve`
// with a one-line reason naming the listener and its address.
func TestPortInUseIsOneLine(t *testing.T) {
	for _, name := range []string{"smtp", "lmtp"} {
		t.Run(name, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			dir := t.TempDir()
			path, _ := writeConfig(t, dir, "")
			cfg, _ := os.ReadFile(path)
			cfg = bytes.Replace(cfg, []byte(name+` = "127.0.0.1:0"`), []byte(fmt.Sprintf("%s = %q", name, busy.Addr())), 1)
			if err := os.WriteFile(path, cfg, 0o600); err != nil {
				t.Fatal(err)
			}
			cli{dir: dir}.fails(t, []string{"serve", "--config", path}, name, busy.Addr().String())
		})
	}
}

// TestServeTwiceOnOneDataDir: a second `loft serve` on the data of a
// running one fails at once with one line (the data directory lock), and
// the first one keeps serving.
func TestServeTwiceOnOneDataDir(t *testing.T) {
	dir := t.TempDir()
	path, dataDir := writeConfig(t, dir, "")
	r := cli{dir: dir}
	first := serve(t, r, []string{"smtp", "lmtp"}, "--config", path)
	r.fails(t, []string{"serve", "--config", path}, dataDir)
	greeting(t, first.listeners["smtp"])
	first.stop()
}

// checkOK matches the verdict of `loft check` on a consistent store.
var checkOK = regexp.MustCompile(`(?m)^ok\b`)

// TestCLIBesideRunningServer walks through the account and quota commands
// of DESIGN.md §4 while `loft serve` runs on the same data, and checks
// over one SMTP session, kept open throughout, that each change applies
// to the next transaction.
func TestCLIBesideRunningServer(t *testing.T) {
	dir := t.TempDir()
	path, dataDir := writeConfig(t, dir, "")
	r := cli{dir: dir}
	byEnv := cli{dir: dir, env: []string{"LOFT_CONFIG=" + path}}
	s := serve(t, r, []string{"smtp", "lmtp"}, "--config", path)
	c := dial(t, s.listeners["smtp"], false)
	const alice, bob = "alice@example.test", "bob@example.test"

	// Flags after and before the positional argument; the password is
	// the first line of stdin; --config or $LOFT_CONFIG.
	cli{dir: dir, stdin: "pw-alice\nnot the password\n"}.ok(t, "account", "add", alice, "--quota", "1MB", "--config", path)
	byEnv.stdin = "pw-bob\n"
	byEnv.ok(t, "account", "add", "--quota", "1MB", bob)
	byEnv.stdin = ""
	rows := accountList(t, r, "--config", path)
	for _, a := range []string{alice, bob} {
		if got, want := rows[a], (listRow{a, "0", "0", "1 MB", "0%"}); got != want {
			t.Errorf("account list: %+v, want %+v", got, want)
		}
	}
	if !verify(t, passwordHash(t, dataDir, alice), "pw-alice") {
		t.Errorf("alice's password is not the first line of stdin")
	}

	// Refusals, each one line.
	cli{dir: dir, stdin: "x\n"}.fails(t, []string{"account", "add", alice, "--config", path}, alice)
	cli{dir: dir, stdin: "x\n"}.fails(t, []string{"account", "add", "Alice@Example.TEST", "--config", path}, alice)
	cli{dir: dir, stdin: "x\n"}.fails(t, []string{"account", "add", "carol@elsewhere.test", "--config", path}, "elsewhere.test")
	cli{dir: dir, stdin: "\n"}.fails(t, []string{"account", "add", "dave@example.test", "--config", path}, "password")
	cli{dir: dir, stdin: "x\n"}.fails(t, []string{"account", "add", "erin@example.test", "--quota", "lots", "--config", path}, "lots")
	cli{dir: dir, stdin: "x\n"}.fails(t, []string{"account", "passwd", "nobody@example.test", "--config", path}, "nobody@example.test")
	byEnv.fails(t, []string{"quota", "set", "nobody@example.test", "1MB"}, "nobody@example.test")
	byEnv.fails(t, []string{"quota", "set", alice, "12 parsecs"}, "12 parsecs")
	if rows := accountList(t, byEnv); len(rows) != 2 {
		t.Errorf("refused commands changed the accounts: %+v", rows)
	}

	// account passwd replaces the hash.
	before := passwordHash(t, dataDir, alice)
	cli{dir: dir, stdin: "pw-alice-2\n"}.ok(t, "account", "passwd", "--config", path, alice)
	after := passwordHash(t, dataDir, alice)
	if after == before || !verify(t, after, "pw-alice-2") || verify(t, after, "pw-alice") {
		t.Errorf("account passwd: the stored hash does not match the new password alone")
	}

	// quota set, in every spelling, shown by account list.
	for _, q := range []struct{ arg, shown string }{
		{"200MB", "200 MB"},
		{"1.5GiB", "1.6 GB"},
		{"unlimited", "unlimited"},
		{"default", "50 MB (default)"},
	} {
		byEnv.ok(t, "quota", "set", alice, q.arg)
		if got := accountList(t, byEnv)[alice].Quota; got != q.shown {
			t.Errorf("quota set %s: account list shows quota %q, want %q", q.arg, got, q.shown)
		}
	}
	byEnv.ok(t, "quota", "set", alice, "1.5GiB")
	st := openTestStore(t, dataDir)
	a, err := st.Account(context.Background(), alice)
	st.Close()
	if err != nil || a.Quota != 1610612736 {
		t.Errorf("quota set 1.5GiB: stored quota %v (%v), want 1610612736", a, err)
	}

	// A quota change applies to the running server's next transaction.
	msg := testMessage("two kilobytes", 2000)
	byEnv.ok(t, "quota", "set", alice, "1KB")
	full := gosmtp.EnhancedCode{5, 2, 2}
	stage, err := send(c, int64(len(msg)), alice, msg)
	wantReply(t, "quota 1KB, SIZE= too large", stage, err, "RCPT", 552, full)
	stage, err = send(c, 0, alice, msg)
	wantReply(t, "quota 1KB, no SIZE=", stage, err, "DATA", 552, full)
	byEnv.ok(t, "quota", "set", alice, "unlimited")
	mustSend(t, c, int64(len(msg)), alice, msg)
	mustSend(t, c, 0, alice, msg)
	// Full now (usage above the quota): refused at RCPT even without SIZE=.
	byEnv.ok(t, "quota", "set", alice, "1KB")
	stage, err = send(c, 0, alice, msg)
	wantReply(t, "quota 1KB, already full", stage, err, "RCPT", 552, full)
	row := accountList(t, byEnv)[alice]
	if usage, _ := strconv.Atoi(row.Usage); row.Messages != "2" || usage <= 2*len(msg) {
		t.Errorf("account list after two deliveries of %d bytes: %+v", len(msg), row)
	}

	// account del removes the account and its body files, at once.
	mustSend(t, c, 0, bob, testMessage("for bob", 3000))
	filesBefore := bodyFiles(t, dataDir)
	byEnv.ok(t, "account", "del", bob)
	if got := bodyFiles(t, dataDir); got != filesBefore-1 {
		t.Errorf("account del: %d body files, want %d (bob's one removed)", got, filesBefore-1)
	}
	if rows := accountList(t, byEnv); len(rows) != 1 || rows[alice].Address != alice {
		t.Errorf("account list after del: %+v, want alice alone", rows)
	}
	stage, err = send(c, 0, bob, msg)
	wantReply(t, "deleted account", stage, err, "RCPT", 550, gosmtp.EnhancedCode{5, 1, 1})
	byEnv.fails(t, []string{"account", "del", bob}, bob)

	if out := byEnv.ok(t, "check"); !checkOK.MatchString(out) {
		t.Errorf("loft check beside the server: %q", out)
	}
	c.Quit()
	s.stop()
	if out := r.ok(t, "check", "--config", path); !checkOK.MatchString(out) {
		t.Errorf("loft check after stop: %q", out)
	}
}

// TestDeliveryRefusals checks the refusals of issue 2 end to end, each with
// its own reply: a full mailbox in an LMTP transaction refuses for itself
// alone (552 5.2.2) while the other recipient gets the message; an
// unknown recipient is 550 5.1.1; a foreign domain is not relayed (554
// 5.7.1); a message over smtp.max_message_size is 552 5.3.4, at MAIL with
// SIZE= and after DATA without it.
func TestDeliveryRefusals(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeConfig(t, dir, "\n[smtp]\nmax_message_size = \"100KB\"\n")
	r := cli{dir: dir, env: []string{"LOFT_CONFIG=" + path}, stdin: "pw\n"}
	const full, open = "full@example.test", "open@example.test"
	r.ok(t, "account", "add", full, "--quota", "1KB")
	r.ok(t, "account", "add", open)
	s := serve(t, r, []string{"smtp", "lmtp"})

	// LMTP answers per recipient (RFC 2033 §4.2): the 2 KB message fits
	// the open mailbox, not the full one (usage 0, so RCPT passes and the
	// quota refuses after DATA).
	l := dial(t, s.listeners["lmtp"], true)
	if err := l.Mail("sender@example.net", nil); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{full, open} {
		if err := l.Rcpt(rcpt, nil); err != nil {
			t.Fatalf("LMTP RCPT %s: %v", rcpt, err)
		}
	}
	w, err := l.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(testMessage("lmtp two recipients", 2000))
	resp, err := w.CloseWithLMTPResponse()
	var perRcpt gosmtp.LMTPDataError
	if !errors.As(err, &perRcpt) || len(perRcpt) != 1 || perRcpt[full] == nil {
		t.Fatalf("LMTP DATA: error %v, want a refusal for %s alone", err, full)
	}
	wantReply(t, "LMTP, full mailbox", "DATA", perRcpt[full], "DATA", 552, gosmtp.EnhancedCode{5, 2, 2})
	if resp[open] == nil {
		t.Errorf("LMTP DATA: no 250 for %s: %v", open, resp)
	}
	rows := accountList(t, r)
	if rows[full].Messages != "0" || rows[open].Messages != "1" {
		t.Errorf("account list after the LMTP transaction: %+v, want 0 for %s and 1 for %s", rows, full, open)
	}

	c := dial(t, s.listeners["smtp"], false)
	small := testMessage("small", 500)
	for _, tc := range []struct {
		what, rcpt string
		lmtp       bool
		code       int
		enh        gosmtp.EnhancedCode
	}{
		{"SMTP, unknown recipient", "nobody@example.test", false, 550, gosmtp.EnhancedCode{5, 1, 1}},
		{"LMTP, unknown recipient", "nobody@example.test", true, 550, gosmtp.EnhancedCode{5, 1, 1}},
		{"SMTP, relay", "someone@elsewhere.test", false, 554, gosmtp.EnhancedCode{5, 7, 1}},
	} {
		cl := c
		if tc.lmtp {
			cl = l
		}
		stage, err := send(cl, 0, tc.rcpt, small)
		wantReply(t, tc.what, stage, err, "RCPT", tc.code, tc.enh)
	}
	big := testMessage("too big", 150_000)
	stage, err := send(c, int64(len(big)), open, big)
	wantReply(t, "SMTP, SIZE= above the maximum", stage, err, "MAIL", 552, gosmtp.EnhancedCode{5, 3, 4})
	stage, err = send(c, 0, open, big)
	wantReply(t, "SMTP, message above the maximum", stage, err, "DATA", 552, gosmtp.EnhancedCode{5, 3, 4})
	// The session goes on after a refusal.
	mustSend(t, c, 0, open, small)
	if rows := accountList(t, r); rows[open].Messages != "2" {
		t.Errorf("account list: %+v, want 2 messages for %s", rows, open)
	}
	c.Quit()
	l.Quit()
	s.stop()
}
