// Package interop runs real mail clients (Python's standard library,
// fetchmail, …) against a real `loft serve` built from this tree, on
// 127.0.0.1 with ephemeral ports and a temp data directory.
//
// This file holds what every interop test needs: the binary (built once by
// TestMain), starting and stopping a server, the CLI, delivering over LMTP,
// and finding a client program. A missing client skips its test, or fails
// it under LOFT_INTEROP=required (as in CI).
package interop

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Bounds of the helpers.
const (
	startTimeout = 20 * time.Second // until `loft serve` prints its listeners
	stopTimeout  = 30 * time.Second // SIGTERM until exit; above server.ShutdownGrace
	cliTimeout   = 30 * time.Second // one `loft account …` command
	netTimeout   = 20 * time.Second // one LMTP delivery
)

// testDomain is the mail domain of every interop server.
const testDomain = "example.test"

// loftBin is the binary under test, built once by TestMain.
var loftBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loft-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	loftBin = filepath.Join(dir, "loft")
	build := exec.Command("go", "build", "-o", loftBin, "loft/cmd/loft")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "go build loft/cmd/loft: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// listeners are the listeners every interop server has, each on
// 127.0.0.1:0 (a free port, which `loft serve` prints).
var listeners = []string{"smtp", "lmtp", "pop3", "pop3s"}

// loftProc is a running `loft serve`.
type loftProc struct {
	Dir     string            // the test's temp dir: config, data, log, client files
	DataDir string            // data_dir
	Config  string            // the config file
	Addrs   map[string]string // listener name ("pop3", …) -> host:port as bound
	LogFile string            // its standard error

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// startLoft writes a config (domain example.test, unlimited default quota,
// the listeners above on free loopback ports), appends extraConfig (TOML
// sections other than [listen], e.g. "[pop3]\nexclusive = true"), starts
// `loft serve` and waits until it has printed its listeners. The server is
// stopped when the test ends.
func startLoft(t *testing.T, extraConfig string) *loftProc {
	t.Helper()
	dir := t.TempDir()
	p := &loftProc{
		Dir:     dir,
		DataDir: filepath.Join(dir, "data"),
		Config:  filepath.Join(dir, "loft.toml"),
		LogFile: filepath.Join(dir, "loft.log"),
		Addrs:   map[string]string{},
		done:    make(chan struct{}),
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "hostname = \"localhost\"\ndomains = [%q]\ndata_dir = %q\n\n[listen]\n", testDomain, p.DataDir)
	for _, l := range listeners {
		fmt.Fprintf(&cfg, "%s = \"127.0.0.1:0\"\n", l)
	}
	fmt.Fprintf(&cfg, "\n[quota]\ndefault = \"unlimited\"\n\n%s\n", extraConfig)
	if err := os.WriteFile(p.Config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(p.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(loftBin, "serve", "--config", p.Config)
	p.cmd.Dir = dir
	p.cmd.Stderr = logf
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("loft serve log:\n%s", tail(p.LogFile, 40))
		}
	})

	// `loft serve` prints "Loft is running; …" and then one line per
	// listener: "  pop3   127.0.0.1:40123".
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	listenerLine := regexp.MustCompile(`^\s+(\S+)\s+(\S+:\d+)$`)
	deadline := time.After(startTimeout)
	for len(p.Addrs) < len(listeners) {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("loft serve exited at start:\n%s", tail(p.LogFile, 20))
			}
			if m := listenerLine.FindStringSubmatch(line); m != nil {
				p.Addrs[m[1]] = m[2]
			}
		case <-deadline:
			t.Fatalf("loft serve did not print its listeners within %v:\n%s", startTimeout, tail(p.LogFile, 20))
		}
	}
	go func() { // keep draining, so that the server never blocks on stdout
		for range lines {
		}
	}()
	return p
}

// stop sends SIGTERM and waits for the exit, killing after stopTimeout.
func (p *loftProc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Errorf("loft serve still running %v after SIGTERM; killing it", stopTimeout)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// run runs a loft CLI command on the server's config with stdin as its
// standard input, and returns its standard output; an error fails the test.
func (p *loftProc) run(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, loftBin, append(args, "--config", p.Config)...)
	cmd.Dir = p.Dir
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("loft %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// addAccount creates an account with `loft account add`, the password on
// standard input.
func (p *loftProc) addAccount(t *testing.T, address, password string) {
	t.Helper()
	p.run(t, password+"\n", "account", "add", address)
}

// accountUsage returns the MESSAGES and USAGE columns of `loft account
// list` for address.
func (p *loftProc) accountUsage(t *testing.T, address string) (messages, usage string) {
	t.Helper()
	out := p.run(t, "", "account", "list")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == address {
			return f[1], f[2]
		}
	}
	t.Fatalf("loft account list has no %s:\n%s", address, out)
	return "", ""
}

// deliverLMTP delivers msg to the recipients over LMTP and fails the test
// unless every recipient accepted it.
func (p *loftProc) deliverLMTP(t *testing.T, msg string, rcpts ...string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.Addrs["lmtp"], netTimeout)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(netTimeout))
	c := gosmtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		t.Fatalf("LHLO: %v", err)
	}
	if err := c.SendMail("sender@elsewhere.example", rcpts, strings.NewReader(msg)); err != nil {
		t.Fatalf("LMTP delivery to %v: %v", rcpts, err)
	}
	c.Quit()
}

// needClient returns the path of a client program, or skips the test when
// it is missing (failing instead under LOFT_INTEROP=required, as in CI).
func needClient(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("LOFT_INTEROP") == "required" {
			t.Fatalf("%s is required (LOFT_INTEROP=required) but missing: %v", name, err)
		}
		t.Skipf("%s not installed; skipping interop test (CI installs it)", name)
	}
	return path
}

// runClient runs a client program with a time bound and returns its
// combined output and exit code; only a failure to run it, or a timeout,
// fails the test.
func runClient(t *testing.T, timeout time.Duration, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s timed out after %v:\n%s", name, timeout, out)
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	return string(out), 0
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
