// Package imap is Loft's IMAP server: IMAP4rev2 (RFC 9051) and IMAP4rev1
// (RFC 3501) on one port, with the extensions listed in capabilities. It
// speaks to the store only: mailboxes, messages and flags come from it, and
// its change feed tells every session what other sessions, POP3 and
// deliveries did, which the session announces as untagged responses at the
// moments RFC 9051 §7 allows.
//
// This file holds the Server (listeners, sessions, shutdown); session.go
// the per-connection state machine; parser.go and writer.go the wire
// format; one file per command group the commands.
package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"loft/internal/auth"
	"loft/internal/config"
	"loft/internal/metrics"
	"loft/internal/store"
)

// Timeouts.
const (
	// IdleTimeout is how long a session may wait for a command, IDLE
	// included: RFC 9051 §5.4 asks for at least 30 minutes.
	IdleTimeout = 30 * time.Minute
	// writeTimeout bounds one flush to a client that stopped reading.
	writeTimeout = 5 * time.Minute
	// DefaultAppendLimit is the largest message APPEND takes, advertised
	// as APPENDLIMIT (RFC 7889) when Options.AppendLimit is 0: the same as
	// SMTP's default maximum message size.
	DefaultAppendLimit = 64 * 1000 * 1000
	// DefaultCommandTimeout: see Options.CommandTimeout.
	DefaultCommandTimeout = 2 * time.Minute
	// DefaultMaxAuthFailures is how many failed logins a connection gets
	// before it is closed, so that the throttle's delays cannot be
	// pipelined away.
	DefaultMaxAuthFailures = 3
)

// Options configure a Server.
type Options struct {
	// Hostname appears in the greeting.
	Hostname string
	// TLS, if set, is offered with STARTTLS; with ImplicitTLS the
	// listener speaks TLS from the first byte (port 993).
	TLS         *tls.Config
	ImplicitTLS bool
	// Plaintext says where password authentication is allowed without
	// TLS: config.PlaintextNever, PlaintextLoopback (default) or
	// PlaintextAlways.
	Plaintext string
	// AppendLimit is the largest message APPEND accepts, in bytes; 0 means
	// DefaultAppendLimit.
	AppendLimit int64
	// IdleTimeout overrides IdleTimeout (tests).
	IdleTimeout time.Duration
	// Auth checks logins (with its cache, hashing cap and throttle) and
	// counts sessions per account and address; nil makes one per Server,
	// with Throttle. Share one between protocols so that failures count
	// across them and a login cached over one serves the other.
	Auth *auth.Authenticator
	// Throttle and MaxSessionsPerAccountIP are used only when Auth is
	// nil, to make one; a nil Throttle makes one too.
	Throttle                *auth.Throttle
	MaxSessionsPerAccountIP int
	// MaxLineLength bounds a command line, literals excluded; 0 means
	// DefaultMaxLineLength.
	MaxLineLength int
	// CommandTimeout bounds the time from a command line's first byte to
	// its end (and, with minLiteralRate, a literal's data); 0 means
	// DefaultCommandTimeout.
	CommandTimeout time.Duration
	// MaxAuthFailures failed logins close the connection; 0 means
	// DefaultMaxAuthFailures.
	MaxAuthFailures int
	Logger          *slog.Logger
	// ScanText makes SEARCH read every message for its text keys instead
	// of asking the store's text index (tests compare the two).
	ScanText bool
	// Metrics, if set, counts commands and failed logins.
	Metrics *metrics.Metrics
}

// Server serves IMAP on any number of listeners.
type Server struct {
	st       *store.Store
	opts     Options
	log      *slog.Logger
	commands map[string]command
	m        *metrics.Protocol // nil: no metrics
	seq      atomic.Uint64

	mu        sync.Mutex
	listeners []net.Listener
	sessions  map[*session]struct{}
	closing   bool
	// stop ends the waits of logins in progress (the hashing queue, the
	// throttle's delay) when the server shuts down.
	stopCtx context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a server for the accounts of st.
func New(st *store.Store, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Plaintext == "" {
		opts.Plaintext = config.PlaintextLoopback
	}
	if opts.AppendLimit <= 0 {
		opts.AppendLimit = DefaultAppendLimit
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = IdleTimeout
	}
	if opts.Auth == nil {
		if opts.Throttle == nil {
			opts.Throttle = auth.NewThrottle(auth.ThrottleOptions{})
		}
		opts.Auth = auth.NewAuthenticator(auth.AuthenticatorOptions{
			Accounts: st, Throttle: opts.Throttle, Logger: opts.Logger,
			MaxSessionsPerAccountIP: opts.MaxSessionsPerAccountIP})
	}
	opts.Throttle = opts.Auth.Throttle()
	if opts.MaxLineLength <= 0 {
		opts.MaxLineLength = DefaultMaxLineLength
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	if opts.MaxAuthFailures <= 0 {
		opts.MaxAuthFailures = DefaultMaxAuthFailures
	}
	proto := "imap"
	if opts.ImplicitTLS {
		proto = "imaps"
	}
	stopCtx, stop := context.WithCancel(context.Background())
	return &Server{
		stopCtx:  stopCtx,
		stop:     stop,
		st:       st,
		opts:     opts,
		log:      opts.Logger.With("proto", proto),
		commands: commandTable(),
		m:        opts.Metrics.Protocol(protocolSpec()),
		sessions: make(map[*session]struct{}),
	}
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
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if s.opts.ImplicitTLS && s.opts.TLS != nil {
			c = tls.Server(c, s.opts.TLS)
		}
		ss := newSession(s, c)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.sessions[ss] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				// A bug in one session must not take the server down.
				if r := recover(); r != nil {
					ss.log.Error("session panicked", "panic", r, "stack", string(debug.Stack()))
					ss.conn.Close()
				}
			}()
			start := time.Now()
			ss.serve()
			ss.logEnd(start)
			s.mu.Lock()
			delete(s.sessions, ss)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting connections and ends every session after the
// command it is running (sessions waiting for a command or in IDLE get
// "* BYE" at once); when ctx ends first, the remaining ones are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.stop()
	for _, l := range s.listeners {
		l.Close()
	}
	for ss := range s.sessions {
		ss.interrupt()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	s.stop()
	for _, l := range s.listeners {
		l.Close()
	}
	for ss := range s.sessions {
		ss.conn.Close()
	}
	s.mu.Unlock()
	return nil
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}
