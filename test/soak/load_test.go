package soak

// The load: its shared state (oracle, target, counts, errors), how its
// clients are started and stopped, and the delivery clients (SMTP, LMTP).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Pacing and bounds of every client: the machine is shared, and the point
// is a steady mixed load for a long time, not a peak.
const (
	deliveryPause = 30 * time.Millisecond // between two messages of one delivery connection
	opPause       = 15 * time.Millisecond // between two IMAP operations of one client
	popPause      = 150 * time.Millisecond
	maxOps        = 10_000_000 // per client: a bound on top of the time
	reconnectWait = 20 * time.Millisecond
	deliveryLoops = 4 // SMTP and LMTP alternately
)

// load is a running mixed load and what it has done.
type load struct {
	o     *oracle
	tgt   *target
	crash bool // kills are expected: a connection failure is an interruption, not an error
	// stop ends the load: clients finish the operation under way and end
	// their sessions properly. kill, the test's own deadline, closes
	// connections outright.
	stop, kill context.Context

	pops []*popClient // by account, as in accounts

	mu     sync.Mutex
	counts map[string]int64
	nerrs  int
	errs   []string // the first few
	wg     sync.WaitGroup
}

func newLoad(o *oracle, tgt *target, crash bool, stop, kill context.Context) *load {
	return &load{o: o, tgt: tgt, crash: crash, stop: stop, kill: kill, counts: map[string]int64{}}
}

// start runs every client of the load: deliveries, and per account the
// IMAP clients, one IDLE session and one POP3 client.
func (l *load) start(seed int64) {
	for i := range deliveryLoops {
		l.run(func() { l.deliverLoop(i%2 == 0) })
	}
	for ai, a := range accounts {
		for n := range imapWorkers {
			w := &imapClient{l: l, account: a, n: n,
				rng:   rand.New(rand.NewPCG(uint64(seed), uint64(1000+ai*10+n))),
				inbox: map[uint32]int{}, folder: map[int]uint32{}}
			l.run(w.loop)
		}
		l.run(func() { l.idleLoop(a) })
		p := &popClient{l: l, account: a, rng: rand.New(rand.NewPCG(uint64(seed), uint64(2000+ai))),
			ids: map[string]int{}, kept: map[int]int{}}
		l.pops = append(l.pops, p)
		l.run(p.loop)
	}
}

func (l *load) run(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

// wait waits for every client to end (after stop or kill).
func (l *load) wait() { l.wg.Wait() }

func (l *load) count(kind string, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[kind] += n
}

func (l *load) get(kind string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[kind]
}

// fail records an error of the server: a refusal, a wrong answer.
func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nerrs++
	if len(l.errs) < 20 {
		l.errs = append(l.errs, fmt.Sprintf(format, args...))
	}
}

// broken records a connection that failed. Under kills that is expected;
// otherwise it is an error, unless the test itself is ending.
func (l *load) broken(who string, err error) {
	switch {
	case l.kill.Err() != nil:
	case l.crash:
		l.count("interrupted", 1)
	default:
		l.fail("%s: %v", who, err)
	}
}

// report fails the test for every recorded error.
func (l *load) report(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		t.Error(e)
	}
	if l.nerrs > len(l.errs) {
		t.Errorf("… and %d more errors", l.nerrs-len(l.errs))
	}
}

func (l *load) errors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nerrs
}

// summary is the counts, sorted by kind.
func (l *load) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var kinds []string
	for k := range l.counts {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s=%d", k, l.counts[k])
	}
	return strings.TrimSpace(b.String())
}

// pause waits d, or less if the load stops; it reports whether to go on.
func (l *load) pause(d time.Duration) bool {
	select {
	case <-l.stop.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// reconnect loops: session runs one session against the server's current
// address of listener, until the load stops; after a session it waits for
// the server to come back (or a moment) rather than spin.
func (l *load) reconnect(listener string, session func(addr string)) {
	for range maxOps {
		if l.stop.Err() != nil {
			return
		}
		addr, changed := l.tgt.get(listener)
		if addr != "" {
			session(addr)
		}
		select {
		case <-changed:
		case <-time.After(reconnectWait):
		case <-l.stop.Done():
			return
		}
	}
}

// dial connects to addr; kill closes the connection.
func (l *load) dial(addr string) (net.Conn, func(), error) {
	d := net.Dialer{Timeout: netTimeout}
	conn, err := d.DialContext(l.kill, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(l.kill, func() { conn.Close() })
	return conn, func() { stop(); conn.Close() }, nil
}

// deliverLoop delivers messages over LMTP or SMTP, a connection at a time.
func (l *load) deliverLoop(lmtp bool) {
	name := "smtp"
	if lmtp {
		name = "lmtp"
	}
	l.reconnect(name, func(addr string) {
		conn, done, err := l.dial(addr)
		if err != nil {
			l.broken(name+" dial", err)
			return
		}
		defer done()
		var c *gosmtp.Client
		if lmtp {
			c = gosmtp.NewClientLMTP(conn)
		} else {
			c = gosmtp.NewClient(conn)
		}
		c.CommandTimeout, c.SubmissionTimeout = netTimeout, netTimeout
		if err := c.Hello("load.example.net"); err != nil {
			l.broken(name+" hello", err)
			return
		}
		// A session of a few dozen messages, then a new connection.
		for range 20 + rand.IntN(40) {
			if err := l.deliver(c, conn, name); err != nil {
				l.broken(name, err)
				return
			}
			if !l.pause(deliveryPause) {
				break
			}
		}
		c.Quit()
	})
}

// deliver sends one message and records each recipient's outcome; an error
// means the connection is unusable.
func (l *load) deliver(c *gosmtp.Client, conn net.Conn, name string) error {
	id, rcpts, body := l.o.newDelivery()
	refuse := func(rcpts []string, err error) error {
		var se *gosmtp.SMTPError
		if !errors.As(err, &se) {
			return err // no reply: the copies stay possibly stored
		}
		for _, r := range rcpts {
			l.o.ack(copyKey{r, id}, gone)
			l.fail("%s: message %d to %s refused: %v", name, id, r, err)
		}
		return c.Reset()
	}
	var opts *gosmtp.MailOptions
	if id%2 == 0 {
		opts = &gosmtp.MailOptions{Size: int64(len(body))}
	}
	if err := c.Mail("load@example.net", opts); err != nil {
		return refuse(rcpts, err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return refuse(rcpts, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return refuse(rcpts, err)
	}
	conn.SetWriteDeadline(time.Now().Add(netTimeout))
	if _, err := w.Write(body); err != nil {
		return err
	}
	if name == "smtp" {
		if err := w.Close(); err != nil {
			return refuse(rcpts, err)
		}
		for _, r := range rcpts {
			l.o.ack(copyKey{r, id}, place{mailbox: "INBOX"})
		}
		l.count("smtp", 1)
		return nil
	}
	// LMTP: a reply per recipient (RFC 2033 §4.2); those that came
	// before a failure count.
	resp, err := w.CloseWithLMTPResponse()
	for r := range resp {
		l.o.ack(copyKey{r, id}, place{mailbox: "INBOX"})
	}
	var perRcpt gosmtp.LMTPDataError
	if errors.As(err, &perRcpt) {
		for r, se := range perRcpt {
			l.o.ack(copyKey{r, id}, gone)
			l.fail("lmtp: message %d to %s refused: %v", id, r, se)
		}
		err = nil
	}
	if err == nil {
		l.count("lmtp", 1)
	}
	return err
}
