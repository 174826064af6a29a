// Package smtp receives mail for Loft's accounts over SMTP (as the MX of its
// domains, RFC 5321) and LMTP (behind another MTA, RFC 2033), on
// github.com/emersion/go-smtp. It accepts mail only for local domains,
// checks recipients and quota as early as the protocol allows, and answers
// 250 only after the store has made the message durable.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"loft/internal/metrics"
	"loft/internal/store"
)

// Timeouts. RFC 5321 §4.5.3.2 asks servers to wait at least 5 minutes for a
// command and 10 for the end of DATA; one idle timeout covers both, and
// DefaultCommandTimeout (conn.go) bounds a command once begun.
const (
	// DefaultIdleTimeout is the wait for a command, and for the whole of
	// a message's data after its DATA command.
	DefaultIdleTimeout = 10 * time.Minute
	writeTimeout       = 1 * time.Minute
)

// Options configure a Server.
type Options struct {
	LMTP     bool
	Hostname string   // in the greeting and the Received header
	Domains  []string // local domains, lower-case
	// MaxMessageSize in bytes, advertised in SIZE; larger mail gets 552 5.3.4.
	MaxMessageSize int64
	// MaxRecipients per transaction.
	MaxRecipients int
	// MaxLineLength in bytes. go-smtp's default of 2,000 refuses real mail,
	// which has lines of many thousands of characters.
	MaxLineLength int
	// TLS, if set, is offered with STARTTLS.
	TLS *tls.Config
	// IdleTimeout is DefaultIdleTimeout if 0.
	IdleTimeout time.Duration
	// CommandTimeout bounds a command line once begun;
	// DefaultCommandTimeout if 0.
	CommandTimeout time.Duration
	// MaxMessagesPerSession, if positive, is the most messages one SMTP
	// connection may deliver; the next MAIL gets 421 and the connection
	// closes. Not applied to LMTP, whose client is a trusted MTA.
	MaxMessagesPerSession int
	Logger                *slog.Logger
	// Metrics, if set, counts commands and deliveries.
	Metrics *metrics.Metrics
}

// Server is an SMTP or LMTP listener's server.
type Server struct {
	st   *store.Store
	opts Options
	log  *slog.Logger
	srv  *gosmtp.Server
	m    *metrics.Protocol // nil: no metrics
	seq  atomic.Uint64

	mu        sync.Mutex
	listeners []net.Listener
	closing   bool
	inflight  int           // transactions under way (MAIL FROM to end of data)
	idle      chan struct{} // closed when inflight drops to 0 while closing
}

// New returns a server delivering into st.
func New(st *store.Store, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	proto := "smtp"
	if opts.LMTP {
		proto = "lmtp"
	}
	log = log.With("proto", proto)
	s := &Server{st: st, opts: opts, log: log}
	srv := gosmtp.NewServer(s)
	srv.LMTP = opts.LMTP
	srv.Domain = opts.Hostname
	srv.MaxMessageBytes = opts.MaxMessageSize
	srv.MaxRecipients = opts.MaxRecipients
	srv.MaxLineLength = opts.MaxLineLength
	srv.TLSConfig = opts.TLS
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	s.opts = opts
	s.m = opts.Metrics.Protocol(s.protocolSpec())
	srv.ReadTimeout = opts.IdleTimeout
	srv.WriteTimeout = writeTimeout
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = logAdapter{log}
	s.srv = srv
	return s
}

// Serve accepts connections on l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := s.srv.Serve(guardListener{Listener: l, srv: s})
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing || errors.Is(err, gosmtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and new transactions, waits (until
// ctx ends) for the deliveries under way to be stored and answered, then
// closes every connection. Idle clients do not hold a shutdown up.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for _, l := range s.listeners {
		l.Close()
	}
	var wait chan struct{}
	if s.inflight > 0 {
		s.idle = make(chan struct{})
		wait = s.idle
	}
	s.mu.Unlock()
	var err error
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			err = fmt.Errorf("smtp: shutdown: deliveries still under way: %w", ctx.Err())
		}
	}
	s.srv.Close()
	return err
}

// begin registers a transaction under way; it fails once shutdown started.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.inflight++
	return true
}

func (s *Server) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if s.inflight == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	return s.srv.Close()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// NewSession implements gosmtp.Backend. go-smtp calls it for each
// greeting; the connection's guard, if any, gives it the connection's id
// and logger, so that every line of one connection says the same session.
func (s *Server) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	ss := &session{s: s, conn: c, guard: guardOf(c.Conn())}
	if ss.guard != nil {
		ss.id, ss.log = ss.guard.rec.id, ss.guard.log
	} else {
		ss.id = s.seq.Add(1)
		ss.log = s.log.With("session", ss.id, "remote", c.Conn().RemoteAddr().String())
	}
	ss.command(s.greeting(), time.Now())
	return ss, nil
}

// isLocal reports whether domain is one of the server's.
func (s *Server) isLocal(domain string) bool {
	return slices.Contains(s.opts.Domains, strings.ToLower(domain))
}

// session is one SMTP/LMTP connection's transaction state.
type session struct {
	s    *Server
	conn *gosmtp.Conn
	log  *slog.Logger
	id   uint64
	// guard is the connection's guardConn (nil in tests that bypass
	// Serve).
	guard    *guardConn
	messages int // transactions answered so far on this connection

	from     string
	mailOpts gosmtp.MailOptions
	inTx     bool     // a transaction is registered with begin
	rcpts    []string // as the client gave them, in order, duplicates included (LMTP answers each)
	rcptAcct []int    // for each rcpts entry, its index in accounts
	accounts []string // the distinct recipient accounts, in order
}

func (ss *session) Reset() {
	if ss.inTx {
		ss.inTx = false
		ss.s.end()
	}
	ss.from = ""
	ss.mailOpts = gosmtp.MailOptions{}
	ss.rcpts, ss.rcptAcct, ss.accounts = nil, nil, nil
}

func (ss *session) Logout() error {
	ss.Reset()
	return nil
}

// Mail starts a transaction. From here to the end of its data it counts as
// under way: a shutdown waits for it (bounded) rather than cut it off.
func (ss *session) Mail(from string, opts *gosmtp.MailOptions) error {
	defer ss.command("MAIL", time.Now())
	ss.Reset()
	if limit := ss.s.opts.MaxMessagesPerSession; limit > 0 && !ss.s.opts.LMTP && ss.messages >= limit {
		ss.log.Info("messages per session limit reached; closing", "messages", ss.messages)
		if ss.guard != nil {
			ss.guard.rec.setReason(metrics.EndLimit)
			ss.guard.closeAfter.Store(true)
		}
		return errTooManyMessages
	}
	if !ss.s.begin() {
		return errShuttingDown
	}
	ss.inTx = true
	ss.from = from
	if opts != nil {
		ss.mailOpts = *opts
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	defer ss.command("RCPT", time.Now())
	// go-smtp refuses a bare <Postmaster> (RFC 5321 §4.5.1) before it
	// reaches us; postmaster@domain works like any account.
	local, domain, ok := splitAddress(to)
	if !ok {
		return errBadAddress
	}
	if !ss.s.isLocal(domain) {
		ss.log.Info("relay refused", "rcpt", to, "outcome", metrics.RejectedRelay)
		ss.s.m.Delivery(metrics.RejectedRelay, 1)
		return errRelay
	}
	account := strings.ToLower(local + "@" + domain)
	if err := ss.s.st.CheckQuota(context.Background(), account, ss.mailOpts.Size); err != nil {
		ss.log.Info("recipient refused", "rcpt", to, "outcome", outcome(err), "err", err)
		ss.s.m.Delivery(outcome(err), 1)
		return reply(err)
	}
	idx := slices.Index(ss.accounts, account)
	if idx < 0 {
		idx = len(ss.accounts)
		ss.accounts = append(ss.accounts, account)
	}
	ss.rcpts = append(ss.rcpts, to)
	ss.rcptAcct = append(ss.rcptAcct, idx)
	return nil
}

// Data delivers an SMTP transaction: all recipients or none, since one
// reply answers for all of them (see store.DeliverOptions.AllOrNothing).
func (ss *session) Data(r io.Reader) error {
	defer ss.command("DATA", time.Now())
	ss.messages++
	if ss.guard != nil {
		ss.guard.beginData()
		defer ss.guard.endData()
	}
	results, err := ss.deliver(r, true)
	if err != nil {
		return reply(err)
	}
	for _, res := range results {
		if res.Err != nil && !errors.Is(res.Err, store.ErrNotStored) {
			return reply(res.Err)
		}
	}
	return nil
}

// LMTPData delivers an LMTP transaction with one reply per recipient, so
// that one full mailbox does not bounce the message for the others.
func (ss *session) LMTPData(r io.Reader, status gosmtp.StatusCollector) error {
	defer ss.command("DATA", time.Now())
	ss.messages++
	if ss.guard != nil {
		ss.guard.beginData()
		defer ss.guard.endData()
	}
	results, err := ss.deliver(r, false)
	if err != nil {
		return reply(err)
	}
	for i, rcpt := range ss.rcpts {
		status.SetStatus(rcpt, replyOrNil(results[ss.rcptAcct[i]].Err))
	}
	return nil
}

func (ss *session) deliver(r io.Reader, allOrNothing bool) ([]store.DeliverResult, error) {
	if len(ss.rcpts) == 0 {
		return nil, errNoRecipients
	}
	accounts := ss.accounts
	now := time.Now()
	trace := ss.traceHeaders(now, accounts)
	start := time.Now()
	results, err := ss.s.st.Deliver(context.Background(), io.MultiReader(strings.NewReader(trace), r),
		store.DeliverOptions{Recipients: accounts, InternalDate: now, AllOrNothing: allOrNothing})
	if ss.guard != nil {
		ss.guard.rec.messages.Add(1)
	}
	if err != nil {
		// The message is stored for no one: too large, the client gone
		// mid-data, or a failure of the store.
		o := outcome(err)
		ss.s.m.Delivery(o, len(accounts))
		level := slog.LevelError
		if o == metrics.RejectedSize || errors.Is(err, io.ErrUnexpectedEOF) {
			level = slog.LevelInfo // the client's doing, not the server's
		}
		ss.log.Log(context.Background(), level, "delivery failed", "from", ss.from, "rcpts", accounts,
			"outcome", o, "duration", time.Since(start), "err", err)
		return nil, err
	}
	ss.logDelivery(accounts, results, time.Since(start))
	return results, nil
}

// logDelivery writes a message's delivery line (one per message, naming
// the recipients it was stored for) and a line per recipient that refused
// it, and counts each recipient's outcome.
func (ss *session) logDelivery(accounts []string, results []store.DeliverResult, took time.Duration) {
	var stored []string
	var size int64
	var messageID string
	for i, res := range results {
		o := outcome(res.Err)
		ss.s.m.Delivery(o, 1)
		if res.Err != nil {
			ss.log.Info("not delivered", "rcpt", accounts[i], "outcome", o, "err", res.Err)
			continue
		}
		stored = append(stored, accounts[i])
		size, messageID = res.Size, res.MessageID
	}
	if len(stored) == 0 {
		return
	}
	ss.log.Info("delivered", "from", ss.from, "rcpts", stored, "size", size,
		"message_id", clipMessageID(messageID), "outcome", metrics.Accepted, "duration", took)
}

// traceHeaders returns the Return-Path (RFC 5321 §4.4) and Received header
// fields that Loft prepends, as the final delivery agent, to every message.
func (ss *session) traceHeaders(now time.Time, accounts []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", ss.from)
	remote := ss.conn.Conn().RemoteAddr()
	ip := remote.String()
	if ta, ok := remote.(*net.TCPAddr); ok {
		ip = ta.IP.String()
	}
	with := "ESMTP"
	if ss.s.opts.LMTP {
		with = "LMTP"
	}
	if ss.mailOpts.UTF8 {
		with = "UTF8" + strings.TrimPrefix(with, "E") // RFC 6531 §3.7.3: UTF8SMTP, UTF8LMTP
	}
	if _, ok := ss.conn.TLSConnectionState(); ok {
		with += "S" // RFC 3848
	}
	helo := sanitize(ss.conn.Hostname())
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (Loft) with %s id %d", helo, ip, ss.s.opts.Hostname, with, ss.id)
	if len(accounts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", accounts[0])
	}
	fmt.Fprintf(&b, "; %s\r\n", now.Format(time.RFC1123Z))
	return b.String()
}

// sanitize keeps a client-supplied name from breaking the header it goes in.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f || r == '(' || r == ')' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "unknown"
	}
	if len(s) > 255 {
		s = s[:255]
	}
	return s
}

// splitAddress splits local@domain at the last "@".
func splitAddress(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	return addr[:i], addr[i+1:], true
}

type logAdapter struct{ log *slog.Logger }

func (l logAdapter) Printf(format string, v ...any) { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l logAdapter) Println(v ...any)               { l.log.Warn(fmt.Sprint(v...)) }
