// This file holds the idle-sessions measurement: what a server holds in memory for each
// IMAP connection that sits in IDLE, as a phone or a desktop client keeps one all day.
//
//	loftbench imap-idle --addr 127.0.0.1:PORT --sessions 1000 --pid PID [--comm imap]
//	                    --user-format 'bench%d' --domain D [--first 1] [--accounts 100]
//	                    [--password pass] [--parallel 4] [--settle 10s] [--timeout 5m] [--json]
//
// It measures the server's PSS (/proc/PID/smaps_rollup) before connecting, then opens half
// the sessions (--parallel at a time), each LOGIN, SELECT INBOX, IDLE up to the "+"
// continuation, waits --settle, samples the PSS three times a second apart and takes the
// median; then the same for the other half. At the end every IDLE is ended with DONE and the
// sessions log out. With --comm the PSS is summed over the processes of PID's tree with that
// command name (Dovecot: --pid <master> --comm imap, one process per session); without, it
// is PID's own (Loft: one process).
//
// Three figures per session are reported: the PSS with all sessions open divided by their
// number (what issue 4 asks); the growth from before they opened divided by it (which leaves
// out what a single-process server holds anyway); and the second half's growth divided by its
// sessions, the marginal cost of one more session, which also leaves out memory a server
// keeps whatever the number of sessions (caches, and for Loft the Go heap that the logins'
// argon2id hashing, 19 MiB each, grew and that the runtime returns to the kernel only slowly).

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// imapIdleReadBuffer is small: an idle session reads a few short lines.
const imapIdleReadBuffer = 4 << 10

// imapIdleOptions says what one imap-idle run does.
type imapIdleOptions struct {
	Addr     string
	Sessions int
	Accounts accountSet
	PID      int    // the server process
	Comm     string // sum over PID's descendants with this command name instead
	Parallel int    // sessions being opened at once
	Settle   time.Duration
	Timeout  time.Duration // limit for opening all sessions, and for closing them
	// WarmLogins logs in to each account once (and out) before the first sample, so that
	// what a server spends once per account (a password hash and its buffers, a login
	// cache entry, the mailbox's index) is in the baseline, not in the per-session figures.
	WarmLogins bool
	// sampleEvery spaces the three PSS samples; 0 means a second (tests use less).
	sampleEvery time.Duration
}

// imapIdleResult is what an imap-idle run measured.
type imapIdleResult struct {
	Addr           string  `json:"addr"`
	Sessions       int     `json:"sessions"` // in IDLE when measured
	Errors         int     `json:"errors"`
	OpenSeconds    float64 `json:"open_seconds"` // to open all sessions
	Processes      int     `json:"processes"`    // PSS summed over this many processes
	PSSBeforeKB    int64   `json:"pss_before_kb"`
	PSSKB          int64   `json:"pss_kb"`               // median of three samples with the sessions idle
	KBPerSession   float64 `json:"kb_per_session"`       // PSSKB / Sessions
	DeltaKBPerSess float64 `json:"delta_kb_per_session"` // (PSSKB - PSSBeforeKB) / Sessions
	// The same with the first half of the sessions open, and what the second half added
	// per session: memory a server holds whatever the number of sessions (caches, heap
	// left from the logins' password hashing) cancels out of the marginal figure.
	HalfSessions      int     `json:"half_sessions"`
	HalfPSSKB         int64   `json:"half_pss_kb"`
	MarginalKBPerSess float64 `json:"marginal_kb_per_session"`
	// The anonymous part of the PSS (Pss_Anon), at the same samples: without file pages
	// such as the database pages SQLite maps into Loft.
	AnonBeforeKB          int64   `json:"anon_before_kb"`
	AnonKB                int64   `json:"anon_kb"`
	HalfAnonKB            int64   `json:"half_anon_kb"`
	AnonDeltaKBPerSess    float64 `json:"anon_delta_kb_per_session"`
	AnonMarginalKBPerSess float64 `json:"anon_marginal_kb_per_session"`
	WarmLogins            bool    `json:"warm_logins"` // one login per account before the first sample
	ClientCPUSeconds      float64 `json:"client_cpu_seconds"`
	// FirstErrors are the texts of the first failures.
	FirstErrors []string `json:"first_errors,omitempty"`
}

func imapIdleCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loftbench imap-idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o imapIdleOptions
	fs.StringVar(&o.Addr, "addr", "", "IMAP server `host:port`; loopback only")
	fs.IntVar(&o.Sessions, "sessions", 1000, "sessions to hold in IDLE")
	o.Accounts.addFlags(fs)
	fs.IntVar(&o.PID, "pid", 0, "the server's process `id` (Dovecot: its master)")
	fs.StringVar(&o.Comm, "comm", "", "sum the PSS of --pid's descendants with this command `name` (Dovecot: imap)")
	fs.IntVar(&o.Parallel, "parallel", 4, "sessions opened at once")
	fs.DurationVar(&o.Settle, "settle", 10*time.Second, "wait this long with all sessions idle before measuring")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "limit for opening all sessions, and for closing them")
	fs.BoolVar(&o.WarmLogins, "warm-logins", false, "log in to each account once before the first sample (see imapIdleOptions)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || o.Addr == "" || o.PID <= 0 {
		fmt.Fprintln(stderr, "loftbench imap-idle: --addr and --pid are required, and no arguments")
		return 2
	}
	if o.Accounts.Accounts == 0 {
		o.Accounts.Accounts = o.Sessions
	}
	res, err := runIMAPIdle(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "loftbench imap-idle:", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		fmt.Fprintf(stdout, "imap-idle %s: %d sessions in IDLE (errors %d), opened in %.1f s\n", res.Addr, res.Sessions, res.Errors, res.OpenSeconds)
		fmt.Fprintf(stdout, "PSS        %d KB before, %d KB with the sessions (%d processes)\n", res.PSSBeforeKB, res.PSSKB, res.Processes)
		fmt.Fprintf(stdout, "per session %.1f KB (total / sessions), %.1f KB (growth / sessions), %.1f KB (second half's growth / its sessions)\n",
			res.KBPerSession, res.DeltaKBPerSess, res.MarginalKBPerSess)
		fmt.Fprintf(stdout, "anonymous  %d KB before, %d KB with the sessions: %.1f KB (growth / sessions), %.1f KB (second half)\n",
			res.AnonBeforeKB, res.AnonKB, res.AnonDeltaKBPerSess, res.AnonMarginalKBPerSess)
		fmt.Fprintf(stdout, "client CPU %.2f s\n", res.ClientCPUSeconds)
	}
	return reportErrors(ctx, stderr, "imap-idle", res.Errors, res.FirstErrors)
}

// runIMAPIdle opens the sessions in two halves, measures after each, and closes them. An
// error is returned only when the run cannot start or no session could be opened.
func runIMAPIdle(ctx context.Context, o imapIdleOptions) (*imapIdleResult, error) {
	if o.Sessions < 1 || o.Parallel < 1 || o.Timeout <= 0 || o.Settle < 0 {
		return nil, errors.New("--sessions and --parallel must be at least 1, --timeout positive")
	}
	if o.sampleEvery <= 0 {
		o.sampleEvery = time.Second
	}
	addr, err := loopbackAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	users, err := o.Accounts.logins()
	if err != nil {
		return nil, err
	}
	res := &imapIdleResult{Addr: o.Addr, WarmLogins: o.WarmLogins}
	if o.WarmLogins {
		if err := warmLogins(ctx, addr, users, o.Accounts.Password, o.Timeout); err != nil {
			return nil, err
		}
		select {
		case <-time.After(o.Settle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	before, _, err := serverPSS(o.PID, o.Comm)
	if err != nil {
		return nil, fmt.Errorf("--pid %d: %w", o.PID, err)
	}
	res.PSSBeforeKB, res.AnonBeforeKB = before.PSS, before.Anon
	cpu0 := selfCPU()
	openCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var (
		mu     sync.Mutex
		idlers []idler
	)
	failure := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Errors++
		if len(res.FirstErrors) < maxReportedErrors {
			res.FirstErrors = append(res.FirstErrors, err.Error())
		}
	}
	// open opens sessions from..to-1, Parallel at a time.
	open := func(from, to int) {
		var wg sync.WaitGroup
		next := make(chan int)
		for range o.Parallel {
			wg.Go(func() {
				for i := range next {
					s, err := openIdler(openCtx, addr, users[i%len(users)], o.Accounts.Password, o.Timeout)
					if err != nil {
						failure(fmt.Errorf("session %d: %w", i, err))
						continue
					}
					mu.Lock()
					idlers = append(idlers, s)
					mu.Unlock()
				}
			})
		}
	feed:
		for i := from; i < to; i++ {
			select {
			case next <- i:
			case <-openCtx.Done():
				break feed
			}
		}
		close(next)
		wg.Wait()
	}
	defer func() { closeIdlers(idlers, o.Parallel*4, o.Timeout) }()
	// measure waits Settle, then returns the median of three samples (by PSS).
	measure := func() (memUse, error) {
		select {
		case <-time.After(o.Settle):
		case <-ctx.Done():
			return memUse{}, ctx.Err()
		}
		var samples []memUse
		for i := range 3 {
			if i > 0 {
				time.Sleep(o.sampleEvery)
			}
			kb, procs, err := serverPSS(o.PID, o.Comm)
			if err != nil {
				return memUse{}, fmt.Errorf("--pid %d: %w", o.PID, err)
			}
			samples = append(samples, kb)
			res.Processes = procs
		}
		slices.SortFunc(samples, func(a, b memUse) int { return cmp.Compare(a.PSS, b.PSS) })
		return samples[1], nil
	}

	half := o.Sessions / 2
	if half > 0 {
		t0 := time.Now()
		open(0, half)
		res.OpenSeconds = time.Since(t0).Seconds()
		res.HalfSessions = len(idlers)
		if res.HalfSessions > 0 {
			m, err := measure()
			if err != nil {
				return nil, err
			}
			res.HalfPSSKB, res.HalfAnonKB = m.PSS, m.Anon
		}
	}
	t0 := time.Now()
	open(half, o.Sessions)
	res.OpenSeconds += time.Since(t0).Seconds()
	res.Sessions = len(idlers)
	if res.Sessions == 0 {
		return nil, fmt.Errorf("no session could be opened: %s", res.FirstErrors)
	}
	m, err := measure()
	if err != nil {
		return nil, err
	}
	res.PSSKB, res.AnonKB = m.PSS, m.Anon
	res.KBPerSession = float64(res.PSSKB) / float64(res.Sessions)
	res.DeltaKBPerSess = float64(res.PSSKB-res.PSSBeforeKB) / float64(res.Sessions)
	res.AnonDeltaKBPerSess = float64(res.AnonKB-res.AnonBeforeKB) / float64(res.Sessions)
	if n := res.Sessions - res.HalfSessions; res.HalfSessions > 0 && n > 0 {
		res.MarginalKBPerSess = float64(res.PSSKB-res.HalfPSSKB) / float64(n)
		res.AnonMarginalKBPerSess = float64(res.AnonKB-res.HalfAnonKB) / float64(n)
	}
	res.ClientCPUSeconds = (selfCPU() - cpu0).Seconds()
	return res, nil
}

// warmLogins logs in to each account once, a few at a time, and out again.
func warmLogins(ctx context.Context, addr string, users []string, password string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(users))
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				c, err := dialIMAP(ctx, addr, timeout, imapIdleReadBuffer)
				if err == nil {
					err = c.login(users[i], password)
					if err == nil {
						_, err = c.command("SELECT INBOX", nil)
					}
					if err == nil {
						err = c.logout()
					}
					c.close()
				}
				if err != nil {
					errs[i] = fmt.Errorf("warm login %s: %w", users[i], err)
				}
			}
		})
	}
	for i := range users {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// idler is a session in IDLE.
type idler struct {
	c   *imapConn
	tag string // of the IDLE command
}

// openIdler connects, logs in, selects INBOX and starts IDLE.
func openIdler(ctx context.Context, addr, user, password string, timeout time.Duration) (idler, error) {
	c, err := dialIMAP(ctx, addr, timeout, imapIdleReadBuffer)
	if err != nil {
		return idler{}, fmt.Errorf("connect: %w", err)
	}
	tag := ""
	err = c.login(user, password)
	if err == nil {
		_, err = c.command("SELECT INBOX", nil)
	}
	if err == nil {
		tag, err = c.idle()
	}
	if err != nil {
		c.close()
		return idler{}, fmt.Errorf("%s: %w", user, err)
	}
	c.conn.SetDeadline(time.Time{}) // idle as long as it takes to measure
	return idler{c, tag}, nil
}

// closeIdlers ends every IDLE with DONE and logs out, parallel at a time, all within timeout;
// sessions left when the time is up are just closed.
func closeIdlers(idlers []idler, parallel int, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	work := make(chan idler)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for s := range work {
				if ctx.Err() == nil && s.c.done(s.tag) == nil {
					s.c.logout()
				}
				s.c.close()
			}
		})
	}
	for _, s := range idlers {
		work <- s
	}
	close(work)
	wg.Wait()
}
