// Package soak holds issue 7's soak and crash tests: a mixed load of SMTP
// and LMTP deliveries, IMAP clients (scan, move, store, expunge, fetch,
// append, IDLE) and POP3 clients (download, delete at QUIT, leave on the
// server) on shared accounts, against a real `loft serve`, with an oracle
// that knows what every mailbox must hold. TestSoak runs it for a while and
// watches the server's memory; TestSoakCrash kills the server with SIGKILL
// under it again and again.
//
// This file holds the server process: building, configuring, starting,
// killing and measuring it, and the CLI.
package soak

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
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
)

// Bounds of the process helpers.
const (
	startTimeout = 20 * time.Second // until `loft serve` prints its listeners
	stopTimeout  = 40 * time.Second // SIGTERM until exit; above server.ShutdownGrace
	netTimeout   = 20 * time.Second // one protocol exchange
)

// domain is the mail domain of the test server.
const domain = "example.test"

// password is every test account's password.
const password = "soak password"

// loftBin is the binary under test, built once by TestMain.
var loftBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loft-soak-")
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

// listenerNames are the listeners the load uses, each on 127.0.0.1:0 (a
// free port at every start, which `loft serve` prints).
var listenerNames = []string{"smtp", "lmtp", "imap", "pop3"}

// setup writes a config for a data directory under dir and creates the
// accounts with the CLI. It returns the config file.
func setup(t *testing.T, ctx context.Context, dir string, accounts []string) (cfg, dataDir string) {
	t.Helper()
	dataDir = filepath.Join(dir, "data")
	cfg = filepath.Join(dir, "loft.toml")
	var b strings.Builder
	fmt.Fprintf(&b, "hostname = \"mx.%s\"\ndomains = [%q]\ndata_dir = %q\n\n[listen]\n", domain, domain, dataDir)
	for _, l := range listenerNames {
		fmt.Fprintf(&b, "%s = \"127.0.0.1:0\"\n", l)
	}
	b.WriteString("\n[quota]\ndefault = \"unlimited\"\n")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, a := range accounts {
		loft(t, ctx, password+"\n", "account", "add", a, "--config", cfg)
	}
	return cfg, dataDir
}

// loft runs a CLI command that must succeed and returns its output.
func loft(t *testing.T, ctx context.Context, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, loftBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("loft %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads.
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

// server is a running `loft serve`.
type server struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	exited         chan struct{}
	addrs          map[string]string // listener name -> address it printed
}

var listenerLine = regexp.MustCompile(`(?m)^  (\w+) +(\S+)$`)

// serve starts `loft serve` and waits for it to print its listeners.
// GOTRACEBACK=all makes a SIGQUIT dump every goroutine (see goroutines).
func serve(t *testing.T, ctx context.Context, cfg string) *server {
	t.Helper()
	s := &server{exited: make(chan struct{}), addrs: map[string]string{}}
	s.cmd = exec.Command(loftBin, "serve", "--config", cfg)
	s.cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.kill)
	deadline := time.Now().Add(startTimeout)
	for {
		for _, m := range listenerLine.FindAllStringSubmatch(s.stdout.String(), -1) {
			s.addrs[m[1]] = m[2]
		}
		if len(s.addrs) >= len(listenerNames) {
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("loft serve exited (%v)\nstdout: %s\nstderr: %s", s.cmd.ProcessState, s.stdout.String(), s.stderr.String())
		case <-ctx.Done():
			t.Fatalf("loft serve: %v before it printed its listeners", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("loft serve: no listeners printed within %v\nstdout: %s\nstderr: %s", startTimeout, s.stdout.String(), s.stderr.String())
		}
	}
}

// kill ends the server with SIGKILL, if it still runs, and reaps it.
func (s *server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// terminate stops the server with SIGTERM; it must exit 0 in time.
func (s *server) terminate(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("loft serve still running %v after SIGTERM\nstderr: %s", stopTimeout, s.stderr.String())
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("loft serve exited with %d after SIGTERM, want 0\nstderr: %s", code, s.stderr.String())
	}
}

// goroutineHeader starts each goroutine of a dump: "goroutine 7 [select]:",
// since Go 1.23 "goroutine 7 gp=0xc000… m=nil [select]:".
var goroutineHeader = regexp.MustCompile(`(?m)^goroutine \d+ [^\n]*\[`)

// goroutines ends the server with SIGQUIT, which makes the Go runtime
// print every goroutine's stack (GOTRACEBACK=all), and counts them: the
// server has no endpoint that tells, and this needs no hook in it.
func (s *server) goroutines(t *testing.T) int {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("loft serve still running %v after SIGQUIT", stopTimeout)
	}
	return len(goroutineHeader.FindAllStringIndex(s.stderr.String(), -1))
}

// procStatus is what /proc/PID/status says of the server's memory.
type procStatus struct {
	at      time.Duration // since the load started
	rss     int64         // VmRSS, bytes
	hwm     int64         // VmHWM: peak RSS, bytes
	anon    int64         // RssAnon, RssFile, RssShmem: the RSS by kind, bytes
	file    int64
	shmem   int64
	threads int
	fds     int // open file descriptors
}

// status reads the server's /proc/PID/status and counts its open files.
func (s *server) status() (procStatus, error) {
	pid := s.cmd.Process.Pid
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, err
	}
	defer f.Close()
	var st procStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch key {
		case "VmRSS":
			st.rss = n << 10 // kB
		case "VmHWM":
			st.hwm = n << 10
		case "RssAnon":
			st.anon = n << 10
		case "RssFile":
			st.file = n << 10
		case "RssShmem":
			st.shmem = n << 10
		case "Threads":
			st.threads = int(n)
		}
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return st, err
	}
	st.fds = len(fds)
	return st, nil
}

// sample records the server's status every interval until ctx ends.
func (s *server) sample(ctx context.Context, interval time.Duration) (samples func() []procStatus) {
	var mu sync.Mutex
	var got []procStatus
	began := time.Now()
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if st, err := s.status(); err == nil {
				st.at = time.Since(began)
				mu.Lock()
				got = append(got, st)
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() []procStatus {
		mu.Lock()
		defer mu.Unlock()
		return append([]procStatus(nil), got...)
	}
}

// target tells the clients where the server listens: no addresses while
// it is down (so that they never dial a port some other process may have
// taken since), and a channel closed at every change.
type target struct {
	mu      sync.Mutex
	addrs   map[string]string
	changed chan struct{}
}

func newTarget() *target { return &target{changed: make(chan struct{})} }

func (g *target) set(addrs map[string]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.addrs = addrs
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *target) get(listener string) (addr string, changed <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addrs[listener], g.changed
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
