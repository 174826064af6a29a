// This file holds the LMTP load: a minimal LMTP client (RFC 2033) on net/textproto and the
// loop that drives N connections through one transaction after another.
//
// The client is our own rather than go-smtp's so that the message is written as pre-encoded
// bytes (see mbox.go) and each transaction is exactly MAIL, RCPT, DATA with nothing else.

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxReportedErrors is how many error texts a run keeps: enough to see what went wrong
// without flooding the terminal when a server rejects everything.
const maxReportedErrors = 5

// lmtpOptions says what one LMTP load run does.
type lmtpOptions struct {
	Addr       string        // host:port; the host must be loopback (see loopbackAddr)
	Messages   []message     // sent in order, round-robin over the run
	Conns      int           // parallel connections, each reused for many transactions
	Accounts   int           // recipients cycle through accounts 1..Accounts
	UserFormat string        // fmt format turning an account number into a local part
	Domain     string        // recipient domain
	From       string        // MAIL FROM address
	LHLO       string        // name given in LHLO
	Count      int           // stop after this many transactions in total
	Duration   time.Duration // or after this long, whichever comes first
	Timeout    time.Duration // limit for one transaction (or for connecting and LHLO)
}

// result is what a run measured.
type result struct {
	Addr        string   `json:"addr"`
	Conns       int      `json:"conns"`
	Accounts    int      `json:"accounts"`
	Messages    int      `json:"messages"` // transactions that ended in 2xx
	Errors      int      `json:"errors"`   // transactions that did not
	Bytes       int64    `json:"bytes"`    // sizes of the delivered messages
	Seconds     float64  `json:"seconds"`
	MsgsPerSec  float64  `json:"msgs_per_sec"`
	MBPerSec    float64  `json:"mb_per_sec"` // MB = 10^6 bytes
	P50ms       float64  `json:"p50_ms"`     // per successful transaction, MAIL to final reply
	P99ms       float64  `json:"p99_ms"`
	FirstErrors []string `json:"first_errors,omitempty"`
}

// recipients returns the Accounts recipient addresses, account 1 first.
func (o *lmtpOptions) recipients() ([]string, error) {
	rcpts := make([]string, o.Accounts)
	for i := range rcpts {
		local := fmt.Sprintf(o.UserFormat, i+1)
		if strings.Contains(local, "%!") || strings.ContainsAny(local, "<>@ \r\n") {
			return nil, fmt.Errorf("--user-format %q gives a bad local part %q", o.UserFormat, local)
		}
		rcpts[i] = local + "@" + o.Domain
	}
	if o.Accounts > 1 && rcpts[0] == rcpts[1] {
		return nil, fmt.Errorf("--user-format %q has no %%d: every recipient is %s", o.UserFormat, rcpts[0])
	}
	return rcpts, nil
}

// runLMTP connects Conns clients to Addr, then delivers until Count transactions have been
// made, Duration has passed or ctx is done. Connecting is not timed; the clock starts when
// every connection has said LHLO. An error is returned only when the run cannot start;
// rejected transactions are counted in the result.
func runLMTP(ctx context.Context, o lmtpOptions) (*result, error) {
	switch {
	case len(o.Messages) == 0:
		return nil, errors.New("no messages to send")
	case o.Conns < 1 || o.Accounts < 1 || o.Count < 1:
		return nil, errors.New("--conns, --accounts and --count must be at least 1")
	case o.Duration <= 0 || o.Timeout <= 0:
		return nil, errors.New("--duration and --timeout must be positive")
	}
	addr, err := loopbackAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	rcpts, err := o.recipients()
	if err != nil {
		return nil, err
	}

	clients := make([]*lmtpClient, 0, o.Conns)
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	for range o.Conns {
		c, err := dialLMTP(ctx, addr, o.LHLO, o.Timeout)
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
	}

	var (
		next     atomic.Int64 // index of the next transaction
		mu       sync.Mutex   // guards res and latencies
		res      = &result{Addr: o.Addr, Conns: o.Conns, Accounts: o.Accounts}
		lat      []time.Duration
		wg       sync.WaitGroup
		start    = time.Now()
		deadline = start.Add(o.Duration)
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Errors++
		if len(res.FirstErrors) < maxReportedErrors {
			res.FirstErrors = append(res.FirstErrors, err.Error())
		}
	}
	for _, c := range clients {
		wg.Go(func() {
			var myLat []time.Duration
			var myBytes int64
			defer func() {
				mu.Lock()
				lat = append(lat, myLat...)
				res.Bytes += myBytes
				mu.Unlock()
			}()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				if i >= o.Count {
					break
				}
				m := &o.Messages[i%len(o.Messages)]
				t0 := time.Now()
				err := c.deliver(o.From, rcpts[i%len(rcpts)], m, o.Timeout)
				if err != nil {
					fail(err)
					if c.broken {
						return // the connection is gone; the others carry on
					}
					continue
				}
				myLat = append(myLat, time.Since(t0))
				myBytes += int64(m.size)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	res.Messages = len(lat)
	res.Seconds = elapsed.Seconds()
	if res.Seconds > 0 {
		res.MsgsPerSec = float64(res.Messages) / res.Seconds
		res.MBPerSec = float64(res.Bytes) / 1e6 / res.Seconds
	}
	slices.Sort(lat)
	res.P50ms = percentile(lat, 0.50)
	res.P99ms = percentile(lat, 0.99)

	for _, c := range clients {
		c.quit()
	}
	return res, nil
}

// percentile returns the nearest-rank p-quantile of sorted latencies, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

// loopbackAddr checks that addr names a loopback address and returns it ready to dial.
// loftbench is a load generator: it must never be pointed at someone else's machine, so
// only loopback IPs and "localhost" (taken as 127.0.0.1, never looked up) are allowed.
func loopbackAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q: %v", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("--addr %q: port must be a number from 1 to 65535", addr)
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("--addr %q: refusing a host that is not a loopback IP or localhost", addr)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// lmtpClient is one LMTP connection, used for one transaction at a time.
type lmtpClient struct {
	conn net.Conn
	r    *textproto.Reader
	w    *bufio.Writer
	// Extensions from the LHLO reply that change what MAIL FROM says.
	eightBit, size bool
	// broken is set once an I/O error or a timeout leaves the connection unusable.
	broken bool
}

// dialLMTP connects, reads the greeting and says LHLO.
func dialLMTP(ctx context.Context, addr, lhlo string, timeout time.Duration) (*lmtpClient, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &lmtpClient{conn: conn, r: textproto.NewReader(bufio.NewReader(conn)), w: bufio.NewWriter(conn)}
	conn.SetDeadline(time.Now().Add(timeout))
	if _, _, err := c.r.ReadResponse(220); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: greeting: %w", addr, err)
	}
	_, msg, err := c.cmd(250, "LHLO %s", lhlo)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: LHLO: %w", addr, err)
	}
	// The first line is the server's name, then one extension per line (RFC 5321 §4.1.1.1).
	for _, ext := range strings.Split(msg, "\n")[1:] {
		keyword, _, _ := strings.Cut(strings.TrimSpace(ext), " ")
		switch strings.ToUpper(keyword) {
		case "8BITMIME":
			c.eightBit = true // RFC 6152: say BODY=8BITMIME, the bench set has 8-bit text
		case "SIZE":
			c.size = true // RFC 1870: lets a server refuse an over-quota message at RCPT
		}
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// cmd sends one command line and reads its reply, which must have the expected code
// (textproto semantics: 2 accepts any 2xx).
func (c *lmtpClient) cmd(expect int, format string, args ...any) (int, string, error) {
	fmt.Fprintf(c.w, format, args...)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return 0, "", err
	}
	return c.r.ReadResponse(expect)
}

// deliver runs one transaction: MAIL FROM, RCPT TO, DATA, and reads the one reply LMTP gives
// per accepted recipient (RFC 2033 §4.2). A rejected command leaves the connection usable
// (after RSET); an I/O error marks it broken.
func (c *lmtpClient) deliver(from, rcpt string, m *message, timeout time.Duration) error {
	c.conn.SetDeadline(time.Now().Add(timeout))
	mail := "MAIL FROM:<" + from + ">"
	if c.eightBit {
		mail += " BODY=8BITMIME"
	}
	if c.size {
		mail += " SIZE=" + strconv.Itoa(m.size)
	}
	steps := []struct {
		line   string
		expect int
	}{{mail, 2}, {"RCPT TO:<" + rcpt + ">", 2}, {"DATA", 354}}
	for _, s := range steps {
		if _, _, err := c.cmd(s.expect, "%s", s.line); err != nil {
			return c.failed(s.line, err, true)
		}
	}
	if _, err := c.w.Write(m.wire); err != nil {
		return c.failed("DATA body", err, false)
	}
	if err := c.w.Flush(); err != nil {
		return c.failed("DATA body", err, false)
	}
	if _, _, err := c.r.ReadResponse(2); err != nil {
		return c.failed("end of DATA for <"+rcpt+">", err, false)
	}
	return nil
}

// failed turns err into the reported error. A protocol reply leaves the connection in sync;
// if the transaction is still open (reset), RSET closes it so the next one starts clean.
func (c *lmtpClient) failed(what string, err error, reset bool) error {
	var perr *textproto.Error
	if !errors.As(err, &perr) {
		c.broken = true
		c.conn.Close()
		return fmt.Errorf("%s: %w", what, err)
	}
	if reset {
		if _, _, rerr := c.cmd(250, "RSET"); rerr != nil {
			c.broken = true
			c.conn.Close()
		}
	}
	return fmt.Errorf("%s: %d %s", what, perr.Code, strings.ReplaceAll(perr.Msg, "\n", " / "))
}

// quit says QUIT politely and closes; errors do not matter any more.
func (c *lmtpClient) quit() {
	if c.broken {
		return
	}
	c.conn.SetDeadline(time.Now().Add(2 * time.Second))
	c.cmd(221, "QUIT")
	c.close()
}

// close closes the connection.
func (c *lmtpClient) close() {
	c.broken = true
	c.conn.Close()
}
