// This file holds the POP3 load and the filling of its mailboxes:
//
//	loftbench pop3 --addr 127.0.0.1:PORT --conns N --user-format 'bench%d@bench.test'
//	               [--first 1] [--password pass] [--pipeline 1] [--timeout 120s] [--json]
//	loftbench fill --addr 127.0.0.1:LMTP --mbox FILE --rcpt a@x,b@x [--lhlo host] [--from addr]
//
// pop3: each of --conns sessions, in parallel, logs in to its own account (user-format % (first+i))
// with USER/PASS, lists UIDL, retrieves every message with RETR, and QUITs without deleting
// anything, so a run can be repeated on the same mailboxes. The clock runs from the moment
// all sessions connect to the last QUIT answer. Each message's octets, unstuffed, are checked
// against the size in RETR's +OK (or LIST), so a run also shows that the server sent every byte.
//
// fill: delivers every message of an mbox once over LMTP with all the --rcpt recipients in one
// transaction, so that each of them holds exactly the standard set.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

func init() {
	commands["pop3"] = pop3Command
	commands["fill"] = fillCommand
}

// pop3ReadBuffer is the client's read buffer: large, so that the client reads in big chunks
// and the server, not the client, is what a run measures.
const pop3ReadBuffer = 256 << 10

// pop3Options says what one POP3 load run does.
type pop3Options struct {
	Addr       string        // host:port; loopback only
	Conns      int           // parallel sessions, one account each
	UserFormat string        // fmt format with one %d: the login name of account N
	First      int           // session i logs in to account First+i
	Password   string        // of every account
	Pipeline   int           // RETR commands sent ahead of the answers (RFC 2449 PIPELINING); 1: none
	Timeout    time.Duration // limit for one whole session
}

// pop3Result is what a POP3 run measured.
type pop3Result struct {
	Addr        string   `json:"addr"`
	Conns       int      `json:"conns"`
	Sessions    int      `json:"sessions"` // sessions that completed
	Messages    int      `json:"messages"` // messages retrieved
	Bytes       int64    `json:"bytes"`    // their octets, unstuffed (what LIST announces)
	Errors      int      `json:"errors"`   // failed sessions and messages whose size did not match
	Seconds     float64  `json:"seconds"`
	MsgsPerSec  float64  `json:"msgs_per_sec"`
	MBPerSec    float64  `json:"mb_per_sec"` // MB = 10^6 bytes
	LoginMs     float64  `json:"login_ms"`   // slowest connect+greeting+USER+PASS
	FirstErrors []string `json:"first_errors,omitempty"`
}

func pop3Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loftbench pop3", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o pop3Options
	fs.StringVar(&o.Addr, "addr", "", "POP3 server `host:port`; loopback only")
	fs.IntVar(&o.Conns, "conns", 1, "parallel sessions, each on its own account")
	fs.StringVar(&o.UserFormat, "user-format", "bench%d", "login name of account N, a fmt `format` with one %d")
	fs.IntVar(&o.First, "first", 1, "session i uses account `N`+i")
	fs.StringVar(&o.Password, "password", "pass", "password of every account")
	fs.IntVar(&o.Pipeline, "pipeline", 1, "RETR commands in flight per session (1: wait for each answer)")
	fs.DurationVar(&o.Timeout, "timeout", 120*time.Second, "limit for one whole session")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loftbench pop3: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.Addr == "" {
		fmt.Fprintln(stderr, "loftbench pop3: --addr is required")
		return 2
	}
	res, err := runPOP3(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "loftbench pop3:", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		fmt.Fprintf(stdout, "pop3 %s: %d sessions\n", res.Addr, res.Conns)
		fmt.Fprintf(stdout, "messages  %d (errors %d)\n", res.Messages, res.Errors)
		fmt.Fprintf(stdout, "bytes     %d (%.1f MB)\n", res.Bytes, float64(res.Bytes)/1e6)
		fmt.Fprintf(stdout, "seconds   %.3f\n", res.Seconds)
		fmt.Fprintf(stdout, "msgs/s    %.1f\n", res.MsgsPerSec)
		fmt.Fprintf(stdout, "MB/s      %.2f\n", res.MBPerSec)
		fmt.Fprintf(stdout, "login     %.1f ms (slowest)\n", res.LoginMs)
	}
	if res.Errors > 0 {
		fmt.Fprintf(stderr, "loftbench pop3: %d errors; the first:\n", res.Errors)
		for _, e := range res.FirstErrors {
			fmt.Fprintln(stderr, "  "+e)
		}
		return 1
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "loftbench pop3: interrupted")
		return 1
	}
	return 0
}

// runPOP3 runs Conns sessions at once. An error is returned only when the run cannot start.
func runPOP3(ctx context.Context, o pop3Options) (*pop3Result, error) {
	if o.Conns < 1 || o.Pipeline < 1 || o.First < 0 {
		return nil, errors.New("--conns and --pipeline must be at least 1, --first at least 0")
	}
	if o.Timeout <= 0 {
		return nil, errors.New("--timeout must be positive")
	}
	addr, err := loopbackAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	users := make([]string, o.Conns)
	for i := range users {
		users[i] = fmt.Sprintf(o.UserFormat, o.First+i)
		if strings.Contains(users[i], "%!") || strings.ContainsAny(users[i], " \r\n") {
			return nil, fmt.Errorf("--user-format %q gives a bad login name %q", o.UserFormat, users[i])
		}
	}
	if o.Conns > 1 && users[0] == users[1] {
		return nil, fmt.Errorf("--user-format %q has no %%d: every session would use %s", o.UserFormat, users[0])
	}

	res := &pop3Result{Addr: o.Addr, Conns: o.Conns}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for _, user := range users {
		wg.Go(func() {
			s := pop3Session{addr: addr, user: user, o: &o}
			err := s.run(ctx)
			mu.Lock()
			defer mu.Unlock()
			res.Messages += s.messages
			res.Bytes += s.bytes
			res.LoginMs = max(res.LoginMs, float64(s.login)/float64(time.Millisecond))
			for _, e := range append(s.mismatches, err) {
				if e == nil {
					continue
				}
				res.Errors++
				if len(res.FirstErrors) < maxReportedErrors {
					res.FirstErrors = append(res.FirstErrors, fmt.Sprintf("%s: %v", user, e))
				}
			}
			if err == nil {
				res.Sessions++
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.MsgsPerSec = float64(res.Messages) / res.Seconds
		res.MBPerSec = float64(res.Bytes) / 1e6 / res.Seconds
	}
	return res, nil
}

// pop3Session is one benchmark session and what it measured.
type pop3Session struct {
	addr, user string
	o          *pop3Options
	conn       net.Conn
	r          *bufio.Reader
	w          *bufio.Writer

	login      time.Duration
	messages   int
	bytes      int64
	mismatches []error
}

// run connects, logs in, lists UIDL, retrieves every message and quits.
func (s *pop3Session) run(ctx context.Context) error {
	t0 := time.Now()
	d := net.Dialer{Timeout: s.o.Timeout}
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(t0.Add(s.o.Timeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	s.conn, s.r, s.w = conn, bufio.NewReaderSize(conn, pop3ReadBuffer), bufio.NewWriter(conn)
	if _, err := s.status(); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if _, err := s.cmd("USER " + s.user); err != nil {
		return fmt.Errorf("USER: %w", err)
	}
	if _, err := s.cmd("PASS " + s.o.Password); err != nil {
		return fmt.Errorf("PASS: %w", err)
	}
	s.login = time.Since(t0)

	// UIDL gives the message numbers (deleted ones are left out by the server).
	if _, err := s.cmd("UIDL"); err != nil {
		return fmt.Errorf("UIDL: %w", err)
	}
	var nums []int
	err = s.multiline(func(line []byte, _ bool) {
		f := strings.Fields(string(line))
		if n, err := strconv.Atoi(f[0]); len(f) == 2 && err == nil {
			nums = append(nums, n)
		}
	})
	if err != nil {
		return fmt.Errorf("UIDL: %w", err)
	}

	// RETR each, keeping up to Pipeline commands in flight.
	sent := 0
	send := func() error {
		for sent < len(nums) && sent-s.messages < s.o.Pipeline {
			fmt.Fprintf(s.w, "RETR %d\r\n", nums[sent])
			sent++
		}
		return s.w.Flush()
	}
	for i := range nums {
		if err := send(); err != nil {
			return err
		}
		text, err := s.status()
		if err != nil {
			return fmt.Errorf("RETR %d: %w", nums[i], err)
		}
		var got int64
		err = s.multiline(func(line []byte, eol bool) {
			got += int64(len(line))
			if eol {
				got += 2 // CRLF: stored messages have CRLF line endings
			}
		})
		if err != nil {
			return fmt.Errorf("RETR %d: %w", nums[i], err)
		}
		// "+OK 1234 octets" (RFC 1939's example, Dovecot and Loft alike).
		if f := strings.Fields(text); len(f) >= 2 && f[1] == "octets" {
			if want, err := strconv.ParseInt(f[0], 10, 64); err == nil && want != got {
				s.mismatches = append(s.mismatches, fmt.Errorf("RETR %d: %d octets received, %d announced", nums[i], got, want))
			}
		}
		s.messages++
		s.bytes += got
	}
	if _, err := s.cmd("QUIT"); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	return nil
}

// cmd sends a command and reads its status line.
func (s *pop3Session) cmd(line string) (string, error) {
	s.w.WriteString(line + "\r\n")
	if err := s.w.Flush(); err != nil {
		return "", err
	}
	return s.status()
}

// status reads a status line and returns its text after "+OK"; -ERR is an error.
func (s *pop3Session) status() (string, error) {
	line, err := s.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if rest, ok := strings.CutPrefix(line, "+OK"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("server said %q", line)
}

// multiline reads the lines of a multi-line response up to the terminating ".", removes
// dot-stuffing, and gives fn each line without its CRLF. A line longer than the read buffer
// comes in pieces, all but the last with eol false.
func (s *pop3Session) multiline(fn func(line []byte, eol bool)) error {
	atStart := true
	for {
		frag, err := s.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
		if atStart && len(frag) > 0 && frag[0] == '.' {
			if string(frag) == ".\r\n" {
				return nil
			}
			frag = frag[1:]
		}
		atStart = err == nil
		if atStart {
			frag = frag[:len(frag)-1]
			if len(frag) > 0 && frag[len(frag)-1] == '\r' {
				frag = frag[:len(frag)-1]
			}
		}
		fn(frag, atStart)
	}
}

// fillCommand is `loftbench fill`: every message of an mbox, once, to all the recipients.
func fillCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loftbench fill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "LMTP server `host:port`; loopback only")
	mbox := fs.String("mbox", "", "mbox `file` with the messages to deliver")
	rcpt := fs.String("rcpt", "", "comma-separated recipient `addresses`, all in each transaction")
	lhlo := fs.String("lhlo", "localhost", "`name` to give in LHLO")
	from := fs.String("from", "loftbench@localhost", "MAIL FROM `address`")
	timeout := fs.Duration("timeout", 60*time.Second, "limit for one transaction")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" || *mbox == "" || *rcpt == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "loftbench fill: --addr, --mbox and --rcpt are required, and nothing else")
		return 2
	}
	dial, err := loopbackAddr(*addr)
	if err != nil {
		fmt.Fprintln(stderr, "loftbench fill:", err)
		return 2
	}
	msgs, err := loadMbox(*mbox)
	if err != nil {
		fmt.Fprintln(stderr, "loftbench fill:", err)
		return 2
	}
	c, err := dialLMTP(ctx, dial, *lhlo, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "loftbench fill:", err)
		return 2
	}
	defer c.quit()
	rcpts := strings.Split(*rcpt, ",")
	start := time.Now()
	var bytes int64
	for i := range msgs {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "loftbench fill: interrupted")
			return 1
		}
		if err := fillOne(c, *from, rcpts, &msgs[i], *timeout); err != nil {
			fmt.Fprintf(stderr, "loftbench fill: message %d: %v\n", i+1, err)
			return 1
		}
		bytes += int64(msgs[i].size)
	}
	fmt.Fprintf(stdout, "fill %s: %d messages (%.1f MB) to each of %d recipients in %.1f s\n",
		*addr, len(msgs), float64(bytes)/1e6, len(rcpts), time.Since(start).Seconds())
	return 0
}

// fillOne delivers one message to all rcpts in one LMTP transaction; any refusal is an error.
func fillOne(c *lmtpClient, from string, rcpts []string, m *message, timeout time.Duration) error {
	c.conn.SetDeadline(time.Now().Add(timeout))
	mail := "MAIL FROM:<" + from + ">"
	if c.eightBit {
		mail += " BODY=8BITMIME"
	}
	if c.size {
		mail += " SIZE=" + strconv.Itoa(m.size)
	}
	if _, _, err := c.cmd(2, "%s", mail); err != nil {
		return fmt.Errorf("%s: %w", mail, err)
	}
	for _, r := range rcpts {
		if _, _, err := c.cmd(2, "RCPT TO:<%s>", r); err != nil {
			return fmt.Errorf("RCPT TO:<%s>: %w", r, err)
		}
	}
	if _, _, err := c.cmd(354, "DATA"); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := c.w.Write(m.wire); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	for _, r := range rcpts { // RFC 2033 §4.2: one reply per accepted recipient
		if _, _, err := c.r.ReadResponse(2); err != nil {
			return fmt.Errorf("end of DATA for <%s>: %w", r, err)
		}
	}
	return nil
}
