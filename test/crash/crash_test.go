// Package crash holds the crash-safety test of issue 2: a real `loft serve`
// is killed with SIGKILL in the middle of concurrent SMTP and LMTP
// deliveries, again and again, and restarted on the same data. At the end
// every message that got 250 must be stored exactly once and byte-exact,
// none twice, and the store must be consistent (`loft check`).
package crash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"loft/internal/store"
)

// The test's shape and bounds.
const (
	loops       = 6                // concurrent delivery connections, LMTP and SMTP alternately
	kills       = 8                // SIGKILL rounds; a final round ends with a graceful stop
	budget      = 45 * time.Second // the whole test, verification included
	minKill     = 50 * time.Millisecond
	maxKill     = 500 * time.Millisecond
	minSize     = 1 << 10   // message sizes, uniformly distributed
	maxSize     = 300 << 10 //
	maxAttempts = 1_000_000 // per loop: a bound on top of the time budget
	netTimeout  = 10 * time.Second
	waitTimeout = 10 * time.Second // a start, a stop, the first 250 of a round
)

// accounts receive the messages; a message goes to one or two of them.
var accounts = []string{"ann@example.test", "ben@example.test", "cat@example.test"}

// loftBin is the binary under test, built once by TestMain.
var loftBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loft-crash-")
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

// TestCrashKeepsAcknowledgedMail is issue 2's crash test. Six connections
// deliver numbered messages of 1-300 KB (some with lines of thousands of
// characters, lines that need dot-stuffing, 8-bit text) over LMTP and
// SMTP while the server is killed at a random moment, kills times, and
// restarted; the connections reconnect after each restart. A message
// counts as acknowledged only on its own 250; one whose reply never came
// may be stored once or not at all; one refused must not be stored.
// Set LOFT_CRASH_SEED to replay a seed.
func TestCrashKeepsAcknowledgedMail(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("LOFT_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("LOFT_CRASH_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d", seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("failed with seed %d; replay with LOFT_CRASH_SEED=%d go test -run %s ./test/crash/", seed, seed, t.Name())
		}
	})
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "loft.toml")
	// Port 0: each start gets free ports and prints them; the loops follow.
	config := fmt.Sprintf(`hostname = "mx.example.test"
domains = ["example.test"]
data_dir = %q

[listen]
smtp = "127.0.0.1:0"
lmtp = "127.0.0.1:0"
`, dataDir)
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, a := range accounts {
		loft(t, ctx, "secret\n", "account", "add", a, "--quota", "unlimited", "--config", cfg)
	}

	led := &ledger{seed: seed, msgs: map[int]*sent{}}
	tgt := newTarget()
	loopCtx, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deliverLoop(loopCtx, i%2 == 0, tgt, led)
		}()
	}
	defer func() {
		stopLoops()
		wg.Wait()
	}()

	for round := 1; round <= kills+1; round++ {
		srv := serve(t, ctx, cfg)
		acks := led.acked()
		tgt.set(srv.lmtp, srv.smtp)
		delay := minKill + time.Duration(rng.Int64N(int64(maxKill-minKill)))
		time.Sleep(delay)
		// Each round must make progress, or it proves nothing.
		if !waitFor(ctx, func() bool { return led.acked() > acks }) {
			t.Fatalf("round %d: no delivery acknowledged within %v of the start\nserver stderr:\n%s",
				round, delay+waitTimeout, srv.stderr.String())
		}
		tgt.set("", "")
		if round <= kills {
			srv.kill()
			t.Logf("round %d: SIGKILL after %v; %d acknowledged in the round", round, delay, led.acked()-acks)
			continue
		}
		// The last round: recovery ran at its start; now a graceful
		// stop under load, which must exit 0 and lose nothing.
		srv.terminate(t)
		t.Logf("round %d: SIGTERM after %v; %d acknowledged in the round", round, delay, led.acked()-acks)
	}
	stopLoops()
	wg.Wait()

	out := loft(t, ctx, "", "check", "--config", cfg)
	if !strings.HasPrefix(out, "ok") {
		t.Errorf("loft check: %q, want ok", out)
	}
	verifyStore(t, ctx, dataDir, led)
	if ctx.Err() != nil {
		t.Errorf("the test ran out of its %v budget", budget)
	}
	t.Logf("%v in all", time.Since(began).Round(time.Millisecond))
}

// waitFor polls cond until it holds (true) or waitTimeout passes (false).
func waitFor(ctx context.Context, cond func() bool) bool {
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
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
	lmtp, smtp     string // the addresses it printed
}

var listenerLine = regexp.MustCompile(`(?m)^  (smtp|lmtp) +(\S+)$`)

// serve starts `loft serve` and waits for it to print its listeners.
func serve(t *testing.T, ctx context.Context, cfg string) *server {
	t.Helper()
	s := &server{exited: make(chan struct{})}
	s.cmd = exec.Command(loftBin, "serve", "--config", cfg)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.kill)
	ok := waitFor(ctx, func() bool {
		for _, m := range listenerLine.FindAllStringSubmatch(s.stdout.String(), -1) {
			if m[1] == "lmtp" {
				s.lmtp = m[2]
			} else {
				s.smtp = m[2]
			}
		}
		select {
		case <-s.exited:
			return true
		default:
		}
		return s.lmtp != "" && s.smtp != ""
	})
	select {
	case <-s.exited:
		t.Fatalf("loft serve exited (%v)\nstdout: %s\nstderr: %s", s.cmd.ProcessState, s.stdout.String(), s.stderr.String())
	default:
	}
	if !ok {
		t.Fatalf("loft serve: no listeners printed within %v\nstdout: %s\nstderr: %s", waitTimeout, s.stdout.String(), s.stderr.String())
	}
	return s
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
	case <-time.After(waitTimeout):
		t.Fatalf("loft serve still running %v after SIGTERM\nstderr: %s", waitTimeout, s.stderr.String())
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("loft serve exited with %d after SIGTERM, want 0\nstderr: %s", code, s.stderr.String())
	}
}

// target tells the delivery loops where the server listens: empty
// addresses while it is down (so that they never dial a port that some
// other process may have taken since).
type target struct {
	mu         sync.Mutex
	lmtp, smtp string
	changed    chan struct{} // closed and replaced at every set
}

func newTarget() *target { return &target{changed: make(chan struct{})} }

func (g *target) set(lmtp, smtp string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lmtp, g.smtp = lmtp, smtp
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *target) get(lmtp bool) (addr string, changed <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if lmtp {
		return g.lmtp, g.changed
	}
	return g.smtp, g.changed
}

// outcome is what the server said about one recipient of one message.
type outcome uint8

const (
	pending outcome = iota // no reply: the message may be stored once, or not at all
	acked                  // 250: it must be stored exactly once
	refused                // an error reply: it must not be stored
)

// sent is one message handed to the server.
type sent struct {
	lmtp  bool
	rcpts []string
	size  int
	sum   [sha256.Size]byte
	state map[string]outcome // by recipient
	reply map[string]string  // the refusals' replies, by recipient
}

// ledger records every message and what became of it.
type ledger struct {
	seed  int64
	mu    sync.Mutex
	next  int
	msgs  map[int]*sent
	acks  int
	nacks int
}

// newMessage numbers, builds and records a message as pending.
func (l *ledger) newMessage(lmtp bool) (int, *sent, []byte) {
	l.mu.Lock()
	l.next++
	n := l.next
	l.mu.Unlock()
	rcpts, msg := makeMessage(l.seed, n)
	m := &sent{lmtp: lmtp, rcpts: rcpts, size: len(msg), sum: sha256.Sum256(msg),
		state: map[string]outcome{}, reply: map[string]string{}}
	l.mu.Lock()
	l.msgs[n] = m
	l.mu.Unlock()
	return n, m, msg
}

func (l *ledger) record(m *sent, rcpt string, o outcome, reply string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m.state[rcpt] = o
	switch o {
	case acked:
		l.acks++
	case refused:
		l.nacks++
		m.reply[rcpt] = reply
	}
}

func (l *ledger) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acks
}

// textPool is random printable text that message lines are cut from:
// cheaper than drawing every byte (which the race detector slows down
// a lot), and as deterministic.
var textPool = func() []byte {
	const printable = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_=+/()<>@#"
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = printable[r.IntN(len(printable))]
	}
	return b
}()

// makeMessage builds message n of a seed, deterministically: its
// recipients and its bytes, with CRLF line endings as the store keeps them.
func makeMessage(seed int64, n int) (rcpts []string, msg []byte) {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(n)))
	i := r.IntN(len(accounts))
	rcpts = []string{accounts[i]}
	if r.IntN(4) == 0 {
		rcpts = append(rcpts, accounts[(i+1+r.IntN(len(accounts)-1))%len(accounts)])
	}
	size := minSize + r.IntN(maxSize-minSize+1)
	var b bytes.Buffer
	b.Grow(size + 12000)
	fmt.Fprintf(&b, "Message-ID: <%d.%d@crash.loft.test>\r\n", n, seed)
	fmt.Fprintf(&b, "X-Crash-Seq: %d\r\nFrom: Crash Test <loop@example.net>\r\nTo: %s\r\n", n, strings.Join(rcpts, ", "))
	fmt.Fprintf(&b, "Subject: crash test message %d\r\nDate: Sun, 22 Nov 2026 01:00:00 +0000\r\n", n)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	line := func(n int) {
		at := r.IntN(len(textPool) - n)
		b.Write(textPool[at : at+n])
		b.WriteString("\r\n")
	}
	for b.Len() < size {
		switch k := r.IntN(40); {
		case k == 0: // a long line, as HTML mail and unfolded base64 have
			line(1000 + r.IntN(9000))
		case k == 1: // dot-stuffing, down to a lone "."
			b.WriteString(".")
			line(r.IntN(3))
		case k == 2:
			b.WriteString("8-bit: Grüße, naïve café, 日本語のテキスト, ąčęėįšųūž\r\n")
		case k == 3:
			b.WriteString("\r\n")
		default:
			line(r.IntN(100))
		}
	}
	return rcpts, b.Bytes()
}

// deliverLoop delivers messages over one connection at a time to wherever
// the target says the server is, reconnecting after each failure, until
// ctx ends.
func deliverLoop(ctx context.Context, lmtp bool, tgt *target, led *ledger) {
	for range maxAttempts {
		if ctx.Err() != nil {
			return
		}
		addr, changed := tgt.get(lmtp)
		if addr != "" {
			deliverSession(ctx, addr, lmtp, led)
		}
		// Wait for the server to come back (or for a moment, if the
		// session ended for another reason) rather than spin.
		select {
		case <-changed:
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

// deliverSession sends messages over one connection until it fails.
func deliverSession(ctx context.Context, addr string, lmtp bool, led *ledger) {
	d := net.Dialer{Timeout: netTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return
	}
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	var c *gosmtp.Client
	if lmtp {
		c = gosmtp.NewClientLMTP(conn)
	} else {
		c = gosmtp.NewClient(conn)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = netTimeout, netTimeout
	if err := c.Hello("loop.example.net"); err != nil {
		return
	}
	for ctx.Err() == nil {
		n, m, msg := led.newMessage(lmtp)
		if !transaction(c, conn, n, m, msg, led) {
			return
		}
	}
}

// transaction sends one message and records each recipient's outcome. It
// reports whether the connection is still usable.
func transaction(c *gosmtp.Client, conn net.Conn, n int, m *sent, msg []byte, led *ledger) bool {
	var opts *gosmtp.MailOptions
	if n%2 == 0 {
		opts = &gosmtp.MailOptions{Size: int64(len(msg))}
	}
	refuseAll := func(rcpts []string, err error) bool {
		var se *gosmtp.SMTPError
		if !errors.As(err, &se) {
			return false // no reply: the recipients stay pending
		}
		for _, r := range rcpts {
			led.record(m, r, refused, replyText(se))
		}
		c.Reset()
		return true
	}
	if err := c.Mail("loop@example.net", opts); err != nil {
		return refuseAll(m.rcpts, err)
	}
	var accepted []string
	for _, r := range m.rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			if !refuseAll([]string{r}, err) {
				return false
			}
			continue
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return true
	}
	w, err := c.Data()
	if err != nil {
		return refuseAll(accepted, err)
	}
	conn.SetWriteDeadline(time.Now().Add(netTimeout))
	if _, err := w.Write(msg); err != nil {
		return false
	}
	if !m.lmtp {
		err := w.Close()
		if err == nil {
			for _, r := range accepted {
				led.record(m, r, acked, "")
			}
			return true
		}
		return refuseAll(accepted, err)
	}
	// LMTP: a reply per recipient (RFC 2033 §4.2); those that came before
	// a failure count.
	resp, err := w.CloseWithLMTPResponse()
	for r := range resp {
		led.record(m, r, acked, "")
	}
	var perRcpt gosmtp.LMTPDataError
	if errors.As(err, &perRcpt) {
		for r, se := range perRcpt {
			led.record(m, r, refused, replyText(se))
		}
	}
	_, onlyReplies := err.(gosmtp.LMTPDataError)
	return err == nil || onlyReplies
}

// replyText is a refusal as the server wrote it, "421 4.3.2 …".
func replyText(se *gosmtp.SMTPError) string {
	e := se.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s", se.Code, e[0], e[1], e[2], se.Message)
}

// verifyStore reads the store after the final stop and holds it against
// the ledger.
func verifyStore(t *testing.T, ctx context.Context, dataDir string, led *ledger) {
	t.Helper()
	st, err := store.Open(ctx, store.Options{Dir: dataDir, DefaultQuota: store.Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := st.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("check: %s", p)
	}
	if rep.Unreferenced != 0 {
		t.Errorf("check: %d unreferenced body files after a restart (recovery) and a graceful stop, want 0", rep.Unreferenced)
	}
	checkNoTmpFiles(t, filepath.Join(dataDir, "blobs"))

	const maxReports = 20
	reports := 0
	report := func(format string, args ...any) {
		t.Helper()
		if reports++; reports <= maxReports {
			t.Errorf(format, args...)
		} else if reports == maxReports+1 {
			t.Errorf("… more problems not shown")
		}
	}

	type key struct {
		account string
		n       int
	}
	found := map[key]int{}
	msgID := regexp.MustCompile(`^Message-ID: <(\d+)\.(-?\d+)@crash\.loft\.test>\r\n`)
	stored := 0
	for _, addr := range accounts {
		a, err := st.Account(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		mbs, err := st.Mailboxes(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		var usage, count int64
		for _, mb := range mbs {
			msgs, err := st.Messages(ctx, a.ID, mb.ID)
			if err != nil {
				t.Fatal(err)
			}
			if mb.Name != "INBOX" && len(msgs) > 0 {
				report("%s: %d messages in %s, want all in INBOX", addr, len(msgs), mb.Name)
			}
			for _, info := range msgs {
				count++
				usage += info.Size
				body, err := readBody(st, info.Blob)
				if err != nil {
					report("%s UID %d: %v", addr, info.UID, err)
					continue
				}
				if int64(len(body)) != info.Size {
					report("%s UID %d: body of %d bytes, size recorded %d", addr, info.UID, len(body), info.Size)
				}
				own, err := stripTrace(body)
				if err != nil {
					report("%s UID %d: %v", addr, info.UID, err)
					continue
				}
				mm := msgID.FindSubmatch(own)
				if mm == nil || string(mm[2]) != strconv.FormatInt(led.seed, 10) {
					report("%s UID %d: not a message of this test: %.80q", addr, info.UID, own)
					continue
				}
				n, _ := strconv.Atoi(string(mm[1]))
				m := led.msgs[n]
				switch {
				case m == nil:
					report("%s UID %d: message %d is stored but was never sent", addr, info.UID, n)
					continue
				case !slices.Contains(m.rcpts, addr):
					report("%s UID %d: message %d is stored here but was sent to %v", addr, info.UID, n, m.rcpts)
				case sha256.Sum256(own) != m.sum:
					_, want := makeMessage(led.seed, n)
					report("%s UID %d: message %d differs from what was sent: %s", addr, info.UID, n, diff(own, want))
				}
				found[key{addr, n}]++
				stored++
			}
		}
		if a.Usage != usage || a.Messages != count {
			report("%s: usage %d and %d messages recorded, but its messages add up to %d bytes, %d messages",
				addr, a.Usage, a.Messages, usage, count)
		}
	}

	var nAcked, nPending, nPendingStored, nRefused int
	for n, m := range led.msgs {
		for _, r := range m.rcpts {
			got := found[key{r, n}]
			switch m.state[r] {
			case acked:
				nAcked++
				if got != 1 {
					report("message %d to %s got 250 but is stored %d times, want once", n, r, got)
				}
			case pending:
				nPending++
				nPendingStored += got
				if got > 1 {
					report("message %d to %s (no reply) is stored %d times, want at most once", n, r, got)
				}
			case refused:
				nRefused++
				if got != 0 {
					report("message %d to %s was refused (%s) but is stored %d times", n, r, m.reply[r], got)
				}
				// Only the graceful stop may refuse (421); anything
				// else is a server error under load.
				if !strings.HasPrefix(m.reply[r], "421 ") {
					report("message %d to %s refused: %s", n, r, m.reply[r])
				}
			}
		}
		// SMTP has one reply for all recipients, so a message is stored
		// for all of them or for none (all or nothing).
		if !m.lmtp && len(m.rcpts) == 2 {
			a, b := found[key{m.rcpts[0], n}], found[key{m.rcpts[1], n}]
			if (a == 0) != (b == 0) {
				report("SMTP message %d is stored for one recipient only (%s: %d, %s: %d)", n, m.rcpts[0], a, m.rcpts[1], b)
			}
		}
	}
	t.Logf("%d messages sent: %d recipient copies acknowledged, %d without reply (%d of them stored), %d refused; %d stored",
		len(led.msgs), nAcked, nPending, nPendingStored, nRefused, stored)
	if nAcked == 0 {
		t.Errorf("nothing was acknowledged: the test proved nothing")
	}
}

func readBody(st *store.Store, blob string) ([]byte, error) {
	f, err := st.OpenBody(blob)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// stripTrace removes the Return-Path and Received header fields that Loft
// prepends on delivery and returns the message as the client sent it.
func stripTrace(body []byte) ([]byte, error) {
	line := func() []byte {
		i := bytes.Index(body, []byte("\r\n"))
		if i < 0 {
			return nil
		}
		l := body[:i]
		body = body[i+2:]
		return l
	}
	if l := line(); !bytes.HasPrefix(l, []byte("Return-Path: <")) {
		return nil, fmt.Errorf("first line %.80q, want Return-Path", l)
	}
	if l := line(); !bytes.HasPrefix(l, []byte("Received: from ")) {
		return nil, fmt.Errorf("second line %.80q, want Received", l)
	}
	for len(body) > 0 && (body[0] == '\t' || body[0] == ' ') {
		line()
	}
	return body, nil
}

// diff describes where got first differs from want.
func diff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	ctx := func(b []byte) []byte { return b[max(i-20, 0):min(i+20, len(b))] }
	return fmt.Sprintf("%d bytes, want %d; first difference at byte %d: %q, want %q",
		len(got), len(want), i, ctx(got), ctx(want))
}

// checkNoTmpFiles fails the test for a partial body left in the blob store.
func checkNoTmpFiles(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".tmp") {
			t.Errorf("partial body left behind: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
