// This file holds the mixed IMAP load, in the spirit of the default profile of Dovecot's
// imaptest:
//
//	loftbench imap --addr 127.0.0.1:PORT --clients N --user-format 'bench%d' --domain D
//	               [--first 1] [--accounts N] [--password pass] [--duration 30s] [--mbox FILE]
//	               [--fetch-range 10] [--loops-per-login 1] [--server-pid PID] [--json]
//
// Each client works on its own account (client i on account first + i mod accounts) and
// loops over sessions: connect, LOGIN, SELECT INBOX, FETCH a random range of (ENVELOPE
// BODYSTRUCTURE FLAGS), FETCH the headers of another range, FETCH one whole message,
// STORE ±FLAGS (\Seen) on a range, UID STORE +FLAGS.SILENT (\Deleted) on the message the
// client APPENDed in its previous session and EXPUNGE, APPEND a message, LOGOUT. So a
// mailbox keeps its size (~300 messages in bench/imap.sh) however long the run.
//
// Throughput is tagged commands completed per second; latency is per command, from sending
// it to its tagged answer. Connecting and the greeting are timed but not counted as commands.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func init() {
	commands["imap"] = imapCommand
	commands["imap-big"] = imapBigCommand
	commands["imap-idle"] = imapIdleCommand
	commands["imap-sync"] = imapSyncCommand
}

// imapReadBuffer is the read buffer of a mixed-profile client: big enough that a whole
// message of the standard set usually arrives in a few reads.
const imapReadBuffer = 64 << 10

// The steps of a mixed-profile session, in the order they run.
const (
	opConnect = iota // connect and read the greeting; timed, not a command
	opLogin
	opSelect
	opFetchEnvelope // FETCH a:b (ENVELOPE BODYSTRUCTURE FLAGS)
	opFetchHeaders  // FETCH a:b (BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])
	opFetchBody     // FETCH n (BODY.PEEK[])
	opStoreSeen     // STORE a:b +FLAGS (\Seen) or -FLAGS (\Seen)
	opStoreDeleted  // UID STORE uid +FLAGS.SILENT (\Deleted), on the client's own message
	opExpunge
	opAppend
	opLogout
	numOps
)

var opNames = [numOps]string{
	"connect", "LOGIN", "SELECT", "FETCH envelope", "FETCH headers", "FETCH body",
	"STORE seen", "STORE deleted", "EXPUNGE", "APPEND", "LOGOUT",
}

// accountSet names the accounts a run logs in to.
type accountSet struct {
	UserFormat string // fmt format with one %d: the local part (or login) of account N
	Domain     string // appended as "@domain" when not empty
	First      int    // the first account number
	Accounts   int    // accounts First .. First+Accounts-1
	Password   string // of every account
}

// logins returns the login names of the accounts, First first.
func (a *accountSet) logins() ([]string, error) {
	if a.Accounts < 1 || a.First < 0 {
		return nil, errors.New("--accounts must be at least 1 and --first at least 0")
	}
	users := make([]string, a.Accounts)
	for i := range users {
		u := fmt.Sprintf(a.UserFormat, a.First+i)
		if a.Domain != "" {
			u += "@" + a.Domain
		}
		if strings.Contains(u, "%!") || strings.ContainsAny(u, " \"\\\r\n") {
			return nil, fmt.Errorf("--user-format %q gives a bad login name %q", a.UserFormat, u)
		}
		users[i] = u
	}
	if len(users) > 1 && users[0] == users[1] {
		return nil, fmt.Errorf("--user-format %q has no %%d: every session would use %s", a.UserFormat, users[0])
	}
	return users, nil
}

// addFlags defines the account flags on fs.
func (a *accountSet) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.UserFormat, "user-format", "bench%d", "login of account N (before @domain), a fmt `format` with one %d")
	fs.StringVar(&a.Domain, "domain", "", "`domain` appended to each login as @domain (none if empty)")
	fs.IntVar(&a.First, "first", 1, "the first account `number`")
	fs.IntVar(&a.Accounts, "accounts", 0, "use accounts first..first+`M`-1 (default: one per client or session)")
	fs.StringVar(&a.Password, "password", "pass", "password of every account")
}

// imapOptions says what one mixed-profile run does.
type imapOptions struct {
	Addr          string
	Clients       int
	Accounts      accountSet
	Duration      time.Duration // the run stops after this long
	Loops         int           // sessions per client at most; 0: until Duration
	LoopsPerLogin int           // SELECT..APPEND rounds per session; 1 is imaptest's default
	FetchRange    int           // FETCHes and STOREs cover 1..FetchRange messages
	Timeout       time.Duration // limit for one command
	Messages      [][]byte      // what APPEND sends, cycled; CRLF line endings
	Seed          uint64
	ServerPID     int // when set, the CPU time of this process tree is reported
}

// opStat is one step's tally.
type opStat struct {
	Name   string  `json:"name"`
	Count  int     `json:"count"`  // completed with OK
	Errors int     `json:"errors"` // NO, BAD, I/O errors, timeouts
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
}

// imapResult is what a mixed-profile run measured.
type imapResult struct {
	Addr           string   `json:"addr"`
	Clients        int      `json:"clients"`
	Accounts       int      `json:"accounts"`
	Seconds        float64  `json:"seconds"`
	Commands       int      `json:"commands"` // tagged OKs (connects not counted)
	Errors         int      `json:"errors"`
	CommandsPerSec float64  `json:"commands_per_sec"`
	Sessions       int      `json:"sessions"` // LOGIN to LOGOUT without a broken connection
	SessionsPerSec float64  `json:"sessions_per_sec"`
	P50ms          float64  `json:"p50_ms"` // over all commands
	P99ms          float64  `json:"p99_ms"`
	FetchedBytes   int64    `json:"fetched_bytes"` // literal data received
	AppendedBytes  int64    `json:"appended_bytes"`
	Ops            []opStat `json:"ops"`
	// CPU: loftbench's own (so that a report shows the client was not the limit), the
	// server's process tree (with --server-pid), and the whole machine's busy share.
	ClientCPUSeconds   float64  `json:"client_cpu_seconds"`
	ClientUsPerCommand float64  `json:"client_us_per_command"`
	ServerCPUSeconds   float64  `json:"server_cpu_seconds,omitempty"`
	ServerUsPerCommand float64  `json:"server_us_per_command,omitempty"`
	HostBusyPercent    float64  `json:"host_busy_percent"` // of all CPUs together
	LoadAverage        string   `json:"load_average"`      // /proc/loadavg's 1, 5, 15 min at the end
	FirstErrors        []string `json:"first_errors,omitempty"`
}

func imapCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loftbench imap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := imapOptions{}
	fs.StringVar(&o.Addr, "addr", "", "IMAP server `host:port`; loopback only")
	fs.IntVar(&o.Clients, "clients", 10, "parallel clients")
	o.Accounts.addFlags(fs)
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "length of the run")
	fs.IntVar(&o.Loops, "loops", 0, "sessions per client at most (0: as many as --duration allows)")
	fs.IntVar(&o.LoopsPerLogin, "loops-per-login", 1, "SELECT..APPEND rounds per session (1: imaptest's default, log in each time)")
	fs.IntVar(&o.FetchRange, "fetch-range", 10, "FETCH and STORE ranges hold 1..`N` messages")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "limit for one command")
	mbox := fs.String("mbox", "", "mbox `file` whose messages APPEND sends in turn (default: a generated 4 KB message)")
	seed := fs.Uint64("seed", 1, "random seed")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "report the CPU time of this `pid` and its descendants")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.Seed = *seed
	if fs.NArg() > 0 || o.Addr == "" {
		fmt.Fprintln(stderr, "loftbench imap: --addr is required, and no arguments")
		return 2
	}
	if o.Accounts.Accounts == 0 {
		o.Accounts.Accounts = o.Clients
	}
	if *mbox != "" {
		data, err := os.ReadFile(*mbox)
		if err != nil {
			fmt.Fprintln(stderr, "loftbench imap:", err)
			return 2
		}
		if o.Messages = splitMbox(data); len(o.Messages) == 0 {
			fmt.Fprintf(stderr, "loftbench imap: %s holds no messages\n", *mbox)
			return 2
		}
	}
	res, err := runIMAP(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "loftbench imap:", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		printIMAPResult(stdout, res)
	}
	return reportErrors(ctx, stderr, "imap", res.Errors, res.FirstErrors)
}

// reportErrors prints the first errors and returns the exit status of a run that started.
func reportErrors(ctx context.Context, stderr io.Writer, cmd string, n int, first []string) int {
	if n > 0 {
		fmt.Fprintf(stderr, "loftbench %s: %d errors; the first:\n", cmd, n)
		for _, e := range first {
			fmt.Fprintln(stderr, "  "+e)
		}
		return 1
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "loftbench %s: interrupted\n", cmd)
		return 1
	}
	return 0
}

func printIMAPResult(w io.Writer, r *imapResult) {
	fmt.Fprintf(w, "imap %s: %d clients on %d accounts, %.1f s\n", r.Addr, r.Clients, r.Accounts, r.Seconds)
	fmt.Fprintf(w, "commands   %d (errors %d): %.1f/s, p50 %.2f ms, p99 %.2f ms\n", r.Commands, r.Errors, r.CommandsPerSec, r.P50ms, r.P99ms)
	fmt.Fprintf(w, "sessions   %d: %.1f/s\n", r.Sessions, r.SessionsPerSec)
	fmt.Fprintf(w, "bytes      %.1f MB fetched, %.1f MB appended\n", float64(r.FetchedBytes)/1e6, float64(r.AppendedBytes)/1e6)
	for _, op := range r.Ops {
		fmt.Fprintf(w, "  %-15s %7d  errors %-4d p50 %7.2f ms  p99 %7.2f ms\n", op.Name, op.Count, op.Errors, op.P50ms, op.P99ms)
	}
	fmt.Fprintf(w, "client CPU %.2f s (%.0f µs per command)\n", r.ClientCPUSeconds, r.ClientUsPerCommand)
	if r.ServerCPUSeconds > 0 {
		fmt.Fprintf(w, "server CPU %.2f s (%.0f µs per command)\n", r.ServerCPUSeconds, r.ServerUsPerCommand)
	}
	fmt.Fprintf(w, "host busy  %.0f %% of %d CPUs; load average %s\n", r.HostBusyPercent, numCPU(), r.LoadAverage)
}

// generatedMessage is what APPEND sends without --mbox: a plain 4 KB message.
func generatedMessage() []byte {
	var b strings.Builder
	b.WriteString("From: Loftbench <loftbench@bench.test>\r\nTo: bench@bench.test\r\n")
	b.WriteString("Subject: loftbench APPEND\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n")
	b.WriteString("Message-ID: <append@loftbench>\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=us-ascii\r\n\r\n")
	for i := 0; b.Len() < 4096; i++ {
		fmt.Fprintf(&b, "Line %03d of a message appended by loftbench to keep the mailbox size.\r\n", i)
	}
	return []byte(b.String())
}

// runIMAP runs the clients until Duration has passed (or each has done Loops sessions, or ctx
// is done). An error is returned only when the run cannot start.
func runIMAP(ctx context.Context, o imapOptions) (*imapResult, error) {
	switch {
	case o.Clients < 1 || o.LoopsPerLogin < 1 || o.FetchRange < 1 || o.Loops < 0:
		return nil, errors.New("--clients, --loops-per-login and --fetch-range must be at least 1")
	case o.Duration <= 0 || o.Timeout <= 0:
		return nil, errors.New("--duration and --timeout must be positive")
	}
	addr, err := loopbackAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	users, err := o.Accounts.logins()
	if err != nil {
		return nil, err
	}
	if len(o.Messages) == 0 {
		o.Messages = [][]byte{generatedMessage()}
	}

	clients := make([]*imapClient, o.Clients)
	for i := range clients {
		clients[i] = &imapClient{
			o:    &o,
			addr: addr,
			user: users[i%len(users)],
			rng:  rand.New(rand.NewPCG(o.Seed, uint64(i))),
			next: i, // clients start at different messages of the mbox
		}
	}
	var serverCPU0 time.Duration
	if o.ServerPID > 0 {
		if serverCPU0, err = treeCPU(o.ServerPID); err != nil {
			return nil, fmt.Errorf("--server-pid %d: %w", o.ServerPID, err)
		}
	}
	busy0, total0, _ := hostCPU()
	cpu0 := selfCPU()
	start := time.Now()
	deadline := start.Add(o.Duration)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(ctx, deadline) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := selfCPU() - cpu0
	busy1, total1, _ := hostCPU()

	res := &imapResult{Addr: o.Addr, Clients: o.Clients, Accounts: len(users), Seconds: elapsed.Seconds()}
	var all []time.Duration
	for op := range numOps {
		var lat []time.Duration
		st := opStat{Name: opNames[op]}
		for _, c := range clients {
			lat = append(lat, c.lat[op]...)
			st.Errors += c.errs[op]
		}
		slices.Sort(lat)
		st.Count = len(lat)
		st.P50ms, st.P99ms = percentile(lat, 0.50), percentile(lat, 0.99)
		res.Ops = append(res.Ops, st)
		res.Errors += st.Errors
		if op != opConnect {
			res.Commands += st.Count
			all = append(all, lat...)
		}
	}
	slices.Sort(all)
	res.P50ms, res.P99ms = percentile(all, 0.50), percentile(all, 0.99)
	for _, c := range clients {
		res.Sessions += c.sessions
		res.FetchedBytes += c.fetched
		res.AppendedBytes += c.appended
		for _, e := range c.firstErrors {
			if len(res.FirstErrors) < maxReportedErrors {
				res.FirstErrors = append(res.FirstErrors, e)
			}
		}
	}
	if s := res.Seconds; s > 0 {
		res.CommandsPerSec = float64(res.Commands) / s
		res.SessionsPerSec = float64(res.Sessions) / s
	}
	res.ClientCPUSeconds = cpu.Seconds()
	if res.Commands > 0 {
		res.ClientUsPerCommand = float64(cpu.Microseconds()) / float64(res.Commands)
	}
	if o.ServerPID > 0 {
		if c, err := treeCPU(o.ServerPID); err == nil {
			res.ServerCPUSeconds = (c - serverCPU0).Seconds()
			if res.Commands > 0 {
				res.ServerUsPerCommand = res.ServerCPUSeconds * 1e6 / float64(res.Commands)
			}
		}
	}
	if total1 > total0 {
		res.HostBusyPercent = 100 * float64(busy1-busy0) / float64(total1-total0)
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) >= 3 {
			res.LoadAverage = strings.Join(f[:3], " ")
		}
	}
	return res, nil
}

// numCPU is the number of CPUs /proc/stat counts, for the report.
func numCPU() int {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if len(line) > 3 && strings.HasPrefix(line, "cpu") && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return n
}

// imapClient is one mixed-profile client and what it measured.
type imapClient struct {
	o    *imapOptions
	addr string
	user string
	rng  *rand.Rand
	next int // index of the next message to APPEND

	// ownUID is the UID of the message this client appended last, which its next session
	// deletes; 0 when there is none. ownValidity is the UIDVALIDITY it belongs to.
	ownUID, ownValidity uint32

	lat         [numOps][]time.Duration
	errs        [numOps]int
	sessions    int
	fetched     int64
	appended    int64
	firstErrors []string
}

// errStopped ends a session when the run's time is up.
var errStopped = errors.New("stopped")

// run loops over sessions until the deadline, ctx or the session limit.
func (c *imapClient) run(ctx context.Context, deadline time.Time) {
	for n := 0; c.o.Loops == 0 || n < c.o.Loops; n++ {
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return
		}
		if err := c.session(ctx, deadline); errors.Is(err, errStopped) {
			return
		} else if err != nil {
			// A session that failed before doing anything useful (refused login, no
			// connection) must not turn the loop into a tight one against the server.
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// fail counts an error of step op and keeps its text if it is among the first.
func (c *imapClient) fail(op int, err error) error {
	c.errs[op]++
	if len(c.firstErrors) < maxReportedErrors {
		c.firstErrors = append(c.firstErrors, fmt.Sprintf("%s: %s: %v", c.user, opNames[op], err))
	}
	return err
}

// session runs one session, LOGIN to LOGOUT. A NO or BAD is counted and the session goes on
// (except for LOGIN and SELECT, without which it cannot); an I/O error ends it.
func (c *imapClient) session(ctx context.Context, deadline time.Time) error {
	t0 := time.Now()
	conn, err := dialIMAP(ctx, c.addr, c.o.Timeout, imapReadBuffer)
	if err != nil {
		return c.fail(opConnect, err)
	}
	defer conn.close()
	c.lat[opConnect] = append(c.lat[opConnect], time.Since(t0))
	stop := context.AfterFunc(ctx, func() { conn.conn.SetDeadline(time.Now()) })
	defer stop()

	// step runs one command and times it; fatal errors end the session.
	step := func(op int, run func() error) error {
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			return errStopped
		}
		t := time.Now()
		err := run()
		if err == nil {
			c.lat[op] = append(c.lat[op], time.Since(t))
			return nil
		}
		c.fail(op, err)
		var ie *imapError
		if errors.As(err, &ie) && ie.Status != "BYE" && op != opLogin && op != opSelect {
			return nil // the server said no; the session goes on
		}
		return err
	}
	count := func(r *imapResponse) { c.fetched += r.litBytes }

	if err := step(opLogin, func() error { return conn.login(c.user, c.o.Accounts.Password) }); err != nil {
		return err
	}
	for range c.o.LoopsPerLogin {
		var exists int
		var validity uint32
		err := step(opSelect, func() error {
			_, err := conn.command("SELECT INBOX", func(r *imapResponse) {
				if n, ok := untaggedNumber(r.text, "EXISTS"); ok {
					exists = n
				} else if v, ok := respCode(string(r.text), "UIDVALIDITY"); ok {
					n, _ := strconv.ParseUint(v, 10, 32)
					validity = uint32(n)
				}
			})
			return err
		})
		if err != nil {
			return err
		}
		if exists > 0 {
			steps := []struct {
				op   int
				line string
			}{
				{opFetchEnvelope, "FETCH " + c.randomRange(exists) + " (ENVELOPE BODYSTRUCTURE FLAGS)"},
				{opFetchHeaders, "FETCH " + c.randomRange(exists) + " (BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])"},
				{opFetchBody, "FETCH " + strconv.Itoa(1+c.rng.IntN(exists)) + " (BODY.PEEK[])"},
				{opStoreSeen, "STORE " + c.randomRange(exists) + [2]string{" +FLAGS (\\Seen)", " -FLAGS (\\Seen)"}[c.rng.IntN(2)]},
			}
			for _, s := range steps {
				if err := step(s.op, func() error { _, err := conn.command(s.line, count); return err }); err != nil {
					return err
				}
			}
		}
		if c.ownUID != 0 && c.ownValidity == validity {
			uid := strconv.FormatUint(uint64(c.ownUID), 10)
			if err := step(opStoreDeleted, func() error {
				_, err := conn.command("UID STORE "+uid+" +FLAGS.SILENT (\\Deleted)", count)
				return err
			}); err != nil {
				return err
			}
			if err := step(opExpunge, func() error { _, err := conn.command("EXPUNGE", count); return err }); err != nil {
				return err
			}
		}
		c.ownUID = 0
		msg := c.o.Messages[c.next%len(c.o.Messages)]
		c.next++
		if err := step(opAppend, func() error {
			text, err := conn.appendMessage("INBOX", `\Seen`, msg)
			if err != nil {
				return err
			}
			c.appended += int64(len(msg))
			// [APPENDUID uidvalidity uid] (RFC 4315 §3); without it the message stays.
			if v, ok := respCode(text, "APPENDUID"); ok {
				vs, us, _ := strings.Cut(v, " ")
				val, _ := strconv.ParseUint(vs, 10, 32)
				uid, _ := strconv.ParseUint(us, 10, 32)
				c.ownUID, c.ownValidity = uint32(uid), uint32(val)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if err := step(opLogout, func() error { _, err := conn.command("LOGOUT", nil); return err }); err != nil {
		return err
	}
	c.sessions++
	return nil
}

// randomRange returns a sequence set "a:b" of 1..FetchRange messages within 1..exists.
func (c *imapClient) randomRange(exists int) string {
	a := 1 + c.rng.IntN(exists)
	b := min(a+c.rng.IntN(c.o.FetchRange), exists)
	if a == b {
		return strconv.Itoa(a)
	}
	return strconv.Itoa(a) + ":" + strconv.Itoa(b)
}
