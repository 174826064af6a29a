// This file holds the measurements of issue 5 (IMAP for phones and offline copies):
//
//	loftbench imap-sync --addr 127.0.0.1:PORT --user bench1000@bench.test --std-user bench902@bench.test
//	                    [--password pass] [--parts resync,search,compress] [--rounds 5]
//	                    [--expect N] [--timeout 10m] [--json]
//
// resync, on --user's INBOX: a "phone" session notes UIDVALIDITY and HIGHESTMODSEQ with
// STATUS; another session then makes 10 changes (6 flag changes, 2 expunges, 2 APPENDs) and
// the phone's `SELECT INBOX (QRESYNC (uidvalidity modseq))` is timed from the command to its
// tagged OK, counting the bytes it received; the same with no change gives the response's
// fixed part. The messages expunged are the 2 the benchmark appended the round before, and
// the flags are taken back after each round, so the mailbox ends as it began (with --expect N,
// messages beyond the first N, left by an interrupted run, are expunged at the start).
//
// search: on --user's and --std-user's INBOX (EXAMINE), each of a few SEARCH TEXT, SORT and
// THREAD commands once right after EXAMINE ("first") and then --rounds times (best, median).
//
// compress: `FETCH 1:* (BODY.PEEK[HEADER])` of --std-user's INBOX in a plain session and in
// one that said COMPRESS DEFLATE (RFC 4978) first: bytes on the wire, and after inflating.
//
// Every part runs one untimed pass first (round 0), so both servers answer from warm caches.

package main

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// syncParts are the parts imap-sync can run, in the order it runs them.
var syncParts = []string{"resync", "search", "compress"}

// syncReadBuffer is large: a FETCH of 2,000 headers or a SEARCH of 100,000 numbers is big.
const syncReadBuffer = 1 << 20

// resyncFlagChanges and resyncNew are the round's changes besides the expunges, which are
// as many as resyncNew (the messages appended the round before).
const (
	resyncFlagChanges = 6
	resyncNew         = 2
)

// maxLeftovers bounds what --expect expunges: an interrupted run leaves at most a few
// messages behind, and a mailbox far above --expect is a mistake, not leftovers.
const maxLeftovers = 100

// bigSearches and stdSearches are the commands of the search part on --user's mailbox (the
// generated small messages of bench/lib.sh) and on --std-user's (the standard set).
var (
	bigSearches = []string{
		`UID SEARCH TEXT "message 4242:"`, // one message's body ("Line N of message 4242: ...")
		`UID SEARCH TEXT "kappa"`,         // a word in most messages
		`UID SORT (DATE) UTF-8 ALL`,
		`UID THREAD REFERENCES UTF-8 ALL`,
	}
	stdSearches = []string{
		`UID SEARCH TEXT "postmortem"`,
		`UID SEARCH TEXT "invoice"`,
		`UID SORT (DATE) UTF-8 ALL`,
		`UID THREAD REFERENCES UTF-8 ALL`,
	}
)

// compressFetch is the command of the compress part.
const compressFetch = "FETCH 1:* (BODY.PEEK[HEADER])"

// syncOptions says what one imap-sync run does.
type syncOptions struct {
	Addr, User, StdUser, Password string
	Parts                         []string
	Rounds                        int
	Expect                        int           // resync: messages --user's INBOX holds besides the benchmark's
	Timeout                       time.Duration // limit for one command
}

// syncStep is one measured command.
type syncStep struct {
	Part    string    `json:"part"`
	User    string    `json:"user"`
	Command string    `json:"command"`
	Exists  int       `json:"exists"`
	First   float64   `json:"first"`   // round 0, untimed for best and median
	Seconds []float64 `json:"seconds"` // the timed rounds
	Best    float64   `json:"best"`
	Median  float64   `json:"median"`
	// Of the last round: bytes received from the command to its tagged OK (on the wire, and
	// after inflating when the session is compressed), untagged responses, and for SEARCH,
	// SORT and THREAD the numbers in the answer.
	WireBytes  int64  `json:"wire_bytes"`
	PlainBytes int64  `json:"plain_bytes"`
	Responses  int    `json:"responses"`
	Results    int    `json:"results"`
	Detail     string `json:"detail,omitempty"` // what the response held, in words
}

// syncResult is what an imap-sync run measured.
type syncResult struct {
	Addr             string     `json:"addr"`
	Steps            []syncStep `json:"steps"`
	LoadBefore       string     `json:"load_before"` // /proc/loadavg's 1, 5, 15 min
	LoadAfter        string     `json:"load_after"`
	ClientCPUSeconds float64    `json:"client_cpu_seconds"`
	Errors           int        `json:"errors"`
	FirstErrors      []string   `json:"first_errors,omitempty"`
}

func (r *syncResult) fail(format string, args ...any) {
	r.Errors++
	if len(r.FirstErrors) < maxReportedErrors {
		r.FirstErrors = append(r.FirstErrors, fmt.Sprintf(format, args...))
	}
}

func imapSyncCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loftbench imap-sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o syncOptions
	fs.StringVar(&o.Addr, "addr", "", "IMAP server `host:port`; loopback only")
	fs.StringVar(&o.User, "user", "", "login `name` of the large mailbox (resync, search)")
	fs.StringVar(&o.StdUser, "std-user", "", "login `name` of the standard set's mailbox (search, compress)")
	fs.StringVar(&o.Password, "password", "pass", "password of both")
	parts := fs.String("parts", strings.Join(syncParts, ","), "comma-separated `parts` to run")
	fs.IntVar(&o.Rounds, "rounds", 5, "timed runs of each command")
	fs.IntVar(&o.Expect, "expect", 0, "resync: expunge messages of --user's INBOX beyond the first `N` first (0: none)")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "limit for one command")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.Parts = strings.Split(*parts, ",")
	if fs.NArg() > 0 || o.Addr == "" {
		fmt.Fprintln(stderr, "loftbench imap-sync: --addr is required, and no arguments")
		return 2
	}
	res, err := runIMAPSync(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "loftbench imap-sync:", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		fmt.Fprintf(stdout, "imap-sync %s: load average %s before, %s after\n", res.Addr, res.LoadBefore, res.LoadAfter)
		for _, s := range res.Steps {
			fmt.Fprintf(stdout, "  %-8s %-50s %6d msgs  first %9.2f ms  best %9.2f ms  median %9.2f ms  %8d bytes (%d inflated)  %s\n",
				s.Part, s.Command, s.Exists, 1000*s.First, 1000*s.Best, 1000*s.Median, s.WireBytes, s.PlainBytes, s.Detail)
		}
	}
	return reportErrors(ctx, stderr, "imap-sync", res.Errors, res.FirstErrors)
}

// runIMAPSync runs the parts. An error is returned when the run cannot start or a command
// fails outright; responses other than expected are counted as errors.
func runIMAPSync(ctx context.Context, o syncOptions) (*syncResult, error) {
	if o.Rounds < 1 || o.Timeout <= 0 {
		return nil, errors.New("--rounds must be at least 1 and --timeout positive")
	}
	for _, p := range o.Parts {
		if !slices.Contains(syncParts, p) {
			return nil, fmt.Errorf("unknown part %q (parts: %s)", p, strings.Join(syncParts, ", "))
		}
		if p != "compress" && o.User == "" || p != "resync" && o.StdUser == "" {
			return nil, fmt.Errorf("part %s needs --user and --std-user", p)
		}
	}
	addr, err := loopbackAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	o.Addr = addr
	res := &syncResult{Addr: o.Addr, LoadBefore: loadAverage()}
	cpu0 := selfCPU()
	for _, p := range syncParts {
		if !slices.Contains(o.Parts, p) {
			continue
		}
		var err error
		switch p {
		case "resync":
			err = runResync(ctx, o, res)
		case "search":
			for _, u := range []struct {
				user string
				cmds []string
			}{{o.User, bigSearches}, {o.StdUser, stdSearches}} {
				if err = runSearches(ctx, o, u.user, u.cmds, res); err != nil {
					break
				}
			}
		case "compress":
			err = runCompress(ctx, o, res)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	res.ClientCPUSeconds = (selfCPU() - cpu0).Seconds()
	res.LoadAfter = loadAverage()
	return res, nil
}

// loadAverage returns /proc/loadavg's first three fields, or "" where there is none.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// syncLogin connects, logs in as user and asks for CAPABILITY, so that hasCap knows what
// the authenticated state offers. The connection's deadline follows ctx.
func syncLogin(ctx context.Context, o syncOptions, user string) (*imapConn, error) {
	c, err := dialIMAP(ctx, o.Addr, o.Timeout, syncReadBuffer)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	if err := c.login(user, o.Password); err != nil {
		c.close()
		return nil, fmt.Errorf("LOGIN %s: %w", user, err)
	}
	if _, err := c.command("CAPABILITY", nil); err != nil {
		c.close()
		return nil, fmt.Errorf("CAPABILITY: %w", err)
	}
	return c, nil
}

// timedCommand runs line and returns its time, from writing the command to reading the
// tagged OK, and the bytes received meanwhile on the wire and after inflating. The server
// sends nothing unasked on the connections the benchmark times (no IDLE, no NOTIFY), so the
// bytes are the command's.
func (c *imapConn) timedCommand(line string, untagged func(*imapResponse)) (d time.Duration, wire, plain int64, err error) {
	w0, p0 := c.wireIn(), c.plainIn()
	t0 := time.Now()
	_, err = c.command(line, untagged)
	return time.Since(t0), c.wireIn() - w0, c.plainIn() - p0, err
}

// record adds the round's figures to step: round 0 is First, the others are timed.
func (s *syncStep) record(round int, d time.Duration, wire, plain int64) {
	if round == 0 {
		s.First = d.Seconds()
	} else {
		s.Seconds = append(s.Seconds, d.Seconds())
	}
	s.WireBytes, s.PlainBytes = wire, plain
}

// summarize sets Best and Median from Seconds.
func (s *syncStep) summarize() {
	if len(s.Seconds) == 0 {
		return
	}
	sorted := slices.Sorted(slices.Values(s.Seconds))
	s.Best = sorted[0]
	s.Median = sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		s.Median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
}

// runResync measures the QRESYNC resync (see the top of the file).
func runResync(ctx context.Context, o syncOptions, res *syncResult) error {
	phone, err := syncLogin(ctx, o, o.User)
	if err != nil {
		return err
	}
	defer phone.close()
	other, err := syncLogin(ctx, o, o.User)
	if err != nil {
		return err
	}
	defer other.close()
	if !phone.hasCap("QRESYNC") {
		return errors.New("the server does not offer QRESYNC")
	}
	if !other.hasCap("UIDPLUS") {
		return errors.New("the server does not offer UIDPLUS (UID EXPUNGE, APPENDUID)")
	}
	if _, err := phone.command("ENABLE QRESYNC", nil); err != nil {
		return fmt.Errorf("ENABLE QRESYNC: %w", err)
	}
	if _, err := other.command("SELECT INBOX", nil); err != nil {
		return fmt.Errorf("SELECT INBOX: %w", err)
	}
	uids, err := searchUIDs(other, "UID SEARCH ALL")
	if err != nil {
		return err
	}
	if o.Expect > 0 && len(uids) > o.Expect+maxLeftovers {
		return fmt.Errorf("INBOX holds %d messages, more than %d beyond --expect %d: not expunging them", len(uids), maxLeftovers, o.Expect)
	}
	if o.Expect > 0 && len(uids) > o.Expect {
		// Appended messages get the highest UIDs: these are an interrupted run's.
		if err := expungeUIDs(other, uids[o.Expect:]); err != nil {
			return fmt.Errorf("expunging %d messages beyond the first %d: %w", len(uids)-o.Expect, o.Expect, err)
		}
		uids = uids[:o.Expect]
	}
	if len(uids) < resyncFlagChanges {
		return fmt.Errorf("INBOX holds %d messages; the resync needs at least %d", len(uids), resyncFlagChanges)
	}
	appended, err := appendSyncMessages(other, 0)
	if err != nil {
		return err
	}
	defer func() { expungeUIDs(other, appended) }()

	exists := len(uids) + len(appended)
	quiet := syncStep{Part: "resync", User: o.User, Exists: exists,
		Command: "SELECT INBOX (QRESYNC (uidvalidity modseq)), no change"}
	changed := syncStep{Part: "resync", User: o.User, Exists: exists,
		Command: fmt.Sprintf("SELECT INBOX (QRESYNC (uidvalidity modseq)), %d changes", resyncFlagChanges+2*resyncNew)}
	for round := 0; round <= o.Rounds; round++ {
		// No change since the modseq.
		line, err := qresyncSelect(phone)
		if err != nil {
			return err
		}
		d, wire, plain, fetches, vanished, err := timedResync(phone, line)
		if err != nil {
			return err
		}
		quiet.record(round, d, wire, plain)
		quiet.Responses, quiet.Detail = fetches, resyncDetail(fetches, vanished)
		if fetches != 0 || len(vanished) != 0 {
			res.fail("resync without change: %s", quiet.Detail)
		}

		// The changes: flags of 6 of the original messages (a different 6 each round), the
		// last round's 2 appended messages expunged, 2 new ones appended.
		line, err = qresyncSelect(phone)
		if err != nil {
			return err
		}
		var flagged []uint32
		for k := range resyncFlagChanges {
			flagged = append(flagged, uids[(round*7919+k*len(uids)/resyncFlagChanges)%len(uids)])
		}
		slices.Sort(flagged)
		flagged = slices.Compact(flagged)
		if _, err := other.command("UID STORE "+uidList(flagged)+` +FLAGS.SILENT (\Flagged)`, nil); err != nil {
			return fmt.Errorf("UID STORE: %w", err)
		}
		gone := appended
		if err := expungeUIDs(other, gone); err != nil {
			return err
		}
		if appended, err = appendSyncMessages(other, round+1); err != nil {
			return err
		}
		d, wire, plain, fetches, vanished, err = timedResync(phone, line)
		if err != nil {
			return err
		}
		changed.record(round, d, wire, plain)
		changed.Responses, changed.Detail = fetches, resyncDetail(fetches, vanished)
		if want := len(flagged) + len(appended); fetches != want || !slices.Equal(vanished, gone) {
			res.fail("resync round %d: %s; want %d FETCH and VANISHED (EARLIER) %s", round, changed.Detail, want, uidList(gone))
		}
		if _, err := other.command("UID STORE "+uidList(flagged)+` -FLAGS.SILENT (\Flagged)`, nil); err != nil {
			return fmt.Errorf("UID STORE: %w", err)
		}
	}
	quiet.summarize()
	changed.summarize()
	res.Steps = append(res.Steps, quiet, changed)
	return nil
}

// qresyncSelect asks STATUS for INBOX's UIDVALIDITY and HIGHESTMODSEQ (the phone holds no
// mailbox selected) and returns the SELECT that resyncs from there.
func qresyncSelect(c *imapConn) (string, error) {
	var uv, modseq string
	_, err := c.command("STATUS INBOX (UIDVALIDITY HIGHESTMODSEQ)", func(r *imapResponse) {
		t := string(r.text)
		if !strings.HasPrefix(t, "* STATUS ") {
			return
		}
		uv, modseq = fieldAfter(t, "UIDVALIDITY "), fieldAfter(t, "HIGHESTMODSEQ ")
	})
	if err != nil {
		return "", fmt.Errorf("STATUS: %w", err)
	}
	if uv == "" || modseq == "" {
		return "", errors.New("STATUS gave no UIDVALIDITY or HIGHESTMODSEQ")
	}
	return "SELECT INBOX (QRESYNC (" + uv + " " + modseq + "))", nil
}

// fieldAfter returns the number after key in s, or "".
func fieldAfter(s, key string) string {
	i := strings.Index(strings.ToUpper(s), key)
	if i < 0 {
		return ""
	}
	rest := s[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	return rest[:j]
}

// timedResync runs the SELECT (QRESYNC ...) line, then UNSELECT (untimed), and returns the
// SELECT's time and bytes, its FETCH responses and the UIDs of its VANISHED (EARLIER).
func timedResync(c *imapConn, line string) (d time.Duration, wire, plain int64, fetches int, vanished []uint32, err error) {
	var perr error
	d, wire, plain, err = c.timedCommand(line, func(r *imapResponse) {
		if _, ok := untaggedNumber(r.text, "FETCH"); ok {
			fetches++
		} else if set, ok := bytes.CutPrefix(r.text, []byte("* VANISHED (EARLIER) ")); ok {
			u, err := expandUIDSet(string(set))
			if err != nil && perr == nil {
				perr = err
			}
			vanished = append(vanished, u...)
		}
	})
	if err != nil {
		return 0, 0, 0, 0, nil, fmt.Errorf("%s: %w", line, err)
	}
	if perr != nil {
		return 0, 0, 0, 0, nil, fmt.Errorf("%s: VANISHED: %w", line, perr)
	}
	if _, err := c.command("UNSELECT", nil); err != nil {
		return 0, 0, 0, 0, nil, fmt.Errorf("UNSELECT: %w", err)
	}
	slices.Sort(vanished)
	return d, wire, plain, fetches, vanished, nil
}

func resyncDetail(fetches int, vanished []uint32) string {
	s := fmt.Sprintf("%d FETCH", fetches)
	if len(vanished) > 0 {
		s += fmt.Sprintf(", VANISHED (EARLIER) of %d UIDs", len(vanished))
	}
	return s
}

// appendSyncMessages appends resyncNew messages to INBOX and returns their UIDs (APPENDUID,
// RFC 4315).
func appendSyncMessages(c *imapConn, round int) ([]uint32, error) {
	var uids []uint32
	for k := range resyncNew {
		msg := fmt.Sprintf("From: Loftbench <loftbench@bench.test>\r\nTo: bench@bench.test\r\n"+
			"Subject: imap-sync round %d message %d\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"+
			"Message-ID: <sync.%d.%d.%d@loftbench>\r\nMIME-Version: 1.0\r\n"+
			"Content-Type: text/plain; charset=us-ascii\r\n\r\n"+
			"A message that loftbench imap-sync appends and expunges again.\r\n",
			round, k, time.Now().UnixNano(), round, k)
		text, err := c.appendMessage("INBOX", "", []byte(msg))
		if err != nil {
			return nil, fmt.Errorf("APPEND: %w", err)
		}
		code, ok := respCode(text, "APPENDUID")
		_, uid, _ := strings.Cut(code, " ")
		n, err := strconv.ParseUint(uid, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("APPEND: no APPENDUID in %q", text)
		}
		uids = append(uids, uint32(n))
	}
	return uids, nil
}

// expungeUIDs marks the messages \Deleted and expunges just them (UID EXPUNGE, RFC 4315).
func expungeUIDs(c *imapConn, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	set := uidList(uids)
	if _, err := c.command("UID STORE "+set+` +FLAGS.SILENT (\Deleted)`, nil); err != nil {
		return fmt.Errorf("UID STORE %s: %w", set, err)
	}
	if _, err := c.command("UID EXPUNGE "+set, nil); err != nil {
		return fmt.Errorf("UID EXPUNGE %s: %w", set, err)
	}
	return nil
}

// uidList writes UIDs as a comma-separated sequence set.
func uidList(uids []uint32) string {
	s := make([]string, len(uids))
	for i, u := range uids {
		s[i] = strconv.FormatUint(uint64(u), 10)
	}
	return strings.Join(s, ",")
}

// expandUIDSet parses a sequence set of UIDs ("3,5:7") into its members.
func expandUIDSet(set string) ([]uint32, error) {
	var out []uint32
	for _, part := range strings.Split(strings.TrimSpace(set), ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad UID set %q", set)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				return nil, fmt.Errorf("bad UID set %q", set)
			}
		}
		if a > b {
			a, b = b, a
		}
		if b-a > 10_000_000 {
			return nil, fmt.Errorf("UID range %q too large", part)
		}
		for u := a; u <= b; u++ {
			out = append(out, uint32(u))
		}
	}
	return out, nil
}

// searchUIDs runs a UID SEARCH and returns the UIDs of its answer, sorted.
func searchUIDs(c *imapConn, line string) ([]uint32, error) {
	var uids []uint32
	var perr error
	_, err := c.command(line, func(r *imapResponse) {
		rest, ok := bytes.CutPrefix(r.text, []byte("* SEARCH"))
		if !ok {
			return
		}
		for _, f := range strings.Fields(string(rest)) {
			n, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				if perr == nil {
					perr = fmt.Errorf("%s: bad number %q", line, f)
				}
				return
			}
			uids = append(uids, uint32(n))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", line, err)
	}
	slices.Sort(uids)
	return uids, perr
}

// runSearches times cmds on user's INBOX (see the top of the file).
func runSearches(ctx context.Context, o syncOptions, user string, cmds []string, res *syncResult) error {
	c, err := syncLogin(ctx, o, user)
	if err != nil {
		return err
	}
	defer c.close()
	exists := 0
	if _, err := c.command("EXAMINE INBOX", func(r *imapResponse) {
		if n, ok := untaggedNumber(r.text, "EXISTS"); ok {
			exists = n
		}
	}); err != nil {
		return fmt.Errorf("EXAMINE INBOX: %w", err)
	}
	for _, line := range cmds {
		step := syncStep{Part: "search", User: user, Command: line, Exists: exists}
		for round := 0; round <= o.Rounds; round++ {
			var numbers, threads int
			d, wire, plain, err := c.timedCommand(line, func(r *imapResponse) {
				for _, kind := range []string{"* SEARCH", "* SORT", "* THREAD"} {
					if rest, ok := bytes.CutPrefix(r.text, []byte(kind)); ok {
						numbers, threads = countResults(rest)
					}
				}
			})
			if err != nil {
				return fmt.Errorf("%s: %w", line, err)
			}
			step.record(round, d, wire, plain)
			step.Results = numbers
			step.Detail = fmt.Sprintf("%d results", numbers)
			if strings.Contains(line, "THREAD") {
				step.Detail = fmt.Sprintf("%d messages in %d threads", numbers, threads)
			}
		}
		step.summarize()
		res.Steps = append(res.Steps, step)
	}
	return nil
}

// countResults counts the numbers of a SEARCH, SORT or THREAD answer and, for THREAD, the
// parenthesized threads at the top level.
func countResults(b []byte) (numbers, threads int) {
	depth, inNumber := 0, false
	for _, ch := range b {
		digit := ch >= '0' && ch <= '9'
		if digit && !inNumber {
			numbers++
		}
		inNumber = digit
		switch ch {
		case '(':
			if depth == 0 {
				threads++
			}
			depth++
		case ')':
			depth--
		}
	}
	return numbers, threads
}

// runCompress measures compressFetch without and with COMPRESS DEFLATE.
func runCompress(ctx context.Context, o syncOptions, res *syncResult) error {
	for _, deflate := range []bool{false, true} {
		c, err := syncLogin(ctx, o, o.StdUser)
		if err != nil {
			return err
		}
		step := syncStep{Part: "compress", User: o.StdUser, Command: compressFetch}
		if deflate {
			step.Command += ", COMPRESS=DEFLATE"
			if !c.hasCap("COMPRESS=DEFLATE") {
				c.close()
				step.Detail = "COMPRESS=DEFLATE not offered"
				res.Steps = append(res.Steps, step)
				continue
			}
			if err := c.compress(); err != nil {
				c.close()
				return err
			}
		}
		if _, err := c.command("EXAMINE INBOX", func(r *imapResponse) {
			if n, ok := untaggedNumber(r.text, "EXISTS"); ok {
				step.Exists = n
			}
		}); err != nil {
			c.close()
			return fmt.Errorf("EXAMINE INBOX: %w", err)
		}
		for round := 0; round <= o.Rounds; round++ {
			n := 0
			d, wire, plain, err := c.timedCommand(compressFetch, func(r *imapResponse) {
				if _, ok := untaggedNumber(r.text, "FETCH"); ok {
					n++
				}
			})
			if err != nil {
				c.close()
				return fmt.Errorf("%s: %w", step.Command, err)
			}
			step.record(round, d, wire, plain)
			step.Responses = n
			step.Detail = fmt.Sprintf("%d FETCH", n)
			if n != step.Exists {
				res.fail("%s: %d FETCH responses for %d messages", step.Command, n, step.Exists)
			}
		}
		c.logout()
		step.summarize()
		res.Steps = append(res.Steps, step)
	}
	return nil
}

// compress says COMPRESS DEFLATE (RFC 4978) and, once it is answered, reads and writes raw
// deflate streams (RFC 1951), counting the inflated bytes received beside the wire's.
func (c *imapConn) compress() error {
	if _, err := c.command("COMPRESS DEFLATE", nil); err != nil {
		return fmt.Errorf("COMPRESS DEFLATE: %w", err)
	}
	if c.r.Buffered() > 0 {
		// The server compresses from the octet after its OK; it had no reason to send more.
		return errors.New("COMPRESS DEFLATE: data after the OK before the client said anything")
	}
	fw, err := flate.NewWriter(c.wire, flate.DefaultCompression)
	if err != nil {
		return err
	}
	c.inflated = &countingReader{r: flate.NewReader(c.wire)}
	c.r.Reset(c.inflated)
	c.w.Reset(syncFlusher{fw})
	return nil
}

// syncFlusher ends every write with a sync flush, so that each command the bufio.Writer
// above flushes reaches the server whole.
type syncFlusher struct{ fw *flate.Writer }

func (s syncFlusher) Write(p []byte) (int, error) {
	n, err := s.fw.Write(p)
	if err == nil {
		err = s.fw.Flush()
	}
	return n, err
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	read int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	return n, err
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r    io.Reader
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}

// wireIn is the number of bytes received on the connection so far.
func (c *imapConn) wireIn() int64 { return c.wire.read }

// plainIn is the number of bytes received so far after inflating (the wire's before
// COMPRESS).
func (c *imapConn) plainIn() int64 {
	if c.inflated == nil {
		return c.wire.read
	}
	return c.inflated.read
}
