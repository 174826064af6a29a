// This file holds the large-mailbox measurement:
//
//	loftbench imap-big --addr 127.0.0.1:PORT --user bench1000@bench.test [--password pass]
//	                   [--mailbox INBOX] [--rounds 3] [--warmup=true] [--timeout 10m] [--json]
//
// One session logs in and, after one untimed pass of each step (so that both servers answer
// from warm caches, as a client's second visit would), times each step --rounds times in a
// row: SELECT, `UID FETCH 1:* (FLAGS)`, `UID FETCH 1:* (BODY.PEEK[])`. A step's time runs from
// sending the command to reading its tagged OK, every response read (bodies skipped in the
// read buffer, not copied). The best and the median round are reported; a FETCH that does not
// return one response per message of SELECT's EXISTS counts as an error.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"
)

// imapBigReadBuffer is large: a bulk FETCH is a stream of 100,000 small responses.
const imapBigReadBuffer = 1 << 20

// imapBigSteps are the commands imap-big times, in order.
var imapBigSteps = []string{"SELECT", "UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (BODY.PEEK[])"}

// imapBigOptions says what one imap-big run does.
type imapBigOptions struct {
	Addr, User, Password, Mailbox string
	Rounds                        int
	Warmup                        bool
	Timeout                       time.Duration // limit for one command
}

// bigStep is one step's timings.
type bigStep struct {
	Command   string    `json:"command"`
	Seconds   []float64 `json:"seconds"` // each timed round
	Best      float64   `json:"best"`
	Median    float64   `json:"median"`
	Responses int       `json:"responses"` // FETCH responses in the last round
	Bytes     int64     `json:"bytes"`     // literal data in the last round
}

// imapBigResult is what an imap-big run measured.
type imapBigResult struct {
	Addr             string    `json:"addr"`
	User             string    `json:"user"`
	Mailbox          string    `json:"mailbox"`
	Exists           int       `json:"exists"`
	Steps            []bigStep `json:"steps"`
	ClientCPUSeconds float64   `json:"client_cpu_seconds"` // all rounds, warm-up included
	Errors           int       `json:"errors"`
	FirstErrors      []string  `json:"first_errors,omitempty"`
}

func imapBigCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loftbench imap-big", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o imapBigOptions
	fs.StringVar(&o.Addr, "addr", "", "IMAP server `host:port`; loopback only")
	fs.StringVar(&o.User, "user", "", "login `name`")
	fs.StringVar(&o.Password, "password", "pass", "password")
	fs.StringVar(&o.Mailbox, "mailbox", "INBOX", "mailbox `name` to select")
	fs.IntVar(&o.Rounds, "rounds", 3, "timed runs of each command")
	fs.BoolVar(&o.Warmup, "warmup", true, "run each command once, untimed, first")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "limit for one command")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || o.Addr == "" || o.User == "" {
		fmt.Fprintln(stderr, "loftbench imap-big: --addr and --user are required, and no arguments")
		return 2
	}
	res, err := runIMAPBig(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "loftbench imap-big:", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		fmt.Fprintf(stdout, "imap-big %s: %s %s, %d messages\n", res.Addr, res.User, res.Mailbox, res.Exists)
		for _, s := range res.Steps {
			fmt.Fprintf(stdout, "  %-30s best %8.4f s  median %8.4f s  (%d responses, %.1f MB)\n",
				s.Command, s.Best, s.Median, s.Responses, float64(s.Bytes)/1e6)
		}
		fmt.Fprintf(stdout, "client CPU %.2f s\n", res.ClientCPUSeconds)
	}
	return reportErrors(ctx, stderr, "imap-big", res.Errors, res.FirstErrors)
}

// runIMAPBig logs in and times the steps. An error is returned when the run cannot start
// or a step fails outright; a FETCH with the wrong number of responses is counted.
func runIMAPBig(ctx context.Context, o imapBigOptions) (*imapBigResult, error) {
	if o.Rounds < 1 || o.Timeout <= 0 {
		return nil, errors.New("--rounds must be at least 1 and --timeout positive")
	}
	addr, err := loopbackAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	cpu0 := selfCPU()
	c, err := dialIMAP(ctx, addr, o.Timeout, imapBigReadBuffer)
	if err != nil {
		return nil, err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	defer stop()
	if err := c.login(o.User, o.Password); err != nil {
		return nil, fmt.Errorf("LOGIN %s: %w", o.User, err)
	}

	res := &imapBigResult{Addr: o.Addr, User: o.User, Mailbox: o.Mailbox}
	// run runs step i once and returns its duration, the FETCH responses and the bytes.
	run := func(i int) (time.Duration, int, int64, error) {
		line := imapBigSteps[i]
		if i == 0 {
			line = "SELECT " + quote(o.Mailbox)
		}
		var n int
		var bytes int64
		t0 := time.Now()
		_, err := c.command(line, func(r *imapResponse) {
			bytes += r.litBytes
			if i == 0 {
				if e, ok := untaggedNumber(r.text, "EXISTS"); ok {
					res.Exists = e
				}
			} else if _, ok := untaggedNumber(r.text, "FETCH"); ok {
				n++
			}
		})
		return time.Since(t0), n, bytes, err
	}
	for i, cmd := range imapBigSteps {
		step := bigStep{Command: cmd}
		if i == 0 {
			step.Command = "SELECT " + o.Mailbox
		}
		if o.Warmup {
			if _, _, _, err := run(i); err != nil {
				return nil, fmt.Errorf("%s: %w", step.Command, err)
			}
		}
		for range o.Rounds {
			d, n, b, err := run(i)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", step.Command, err)
			}
			step.Seconds = append(step.Seconds, d.Seconds())
			step.Responses, step.Bytes = n, b
			if i > 0 && n != res.Exists {
				res.Errors++
				if len(res.FirstErrors) < maxReportedErrors {
					res.FirstErrors = append(res.FirstErrors, fmt.Sprintf("%s: %d FETCH responses for %d messages", cmd, n, res.Exists))
				}
			}
		}
		sorted := slices.Sorted(slices.Values(step.Seconds))
		step.Best = sorted[0]
		step.Median = sorted[len(sorted)/2]
		if len(sorted)%2 == 0 {
			step.Median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
		}
		res.Steps = append(res.Steps, step)
	}
	c.logout()
	res.ClientCPUSeconds = (selfCPU() - cpu0).Seconds()
	return res, nil
}
