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
	// Throttle delays answers to failed logins; nil makes one per Server.
	// Share one between protocols so that failures count across them.
	Throttle *auth.Throttle
	Logger   *slog.Logger
	// ScanText makes SEARCH read every message for its text keys instead
	// of asking the store's text index (tests compare the two).
	ScanText bool
}

// Server serves IMAP on any number of listeners.
type Server struct {
	st       *store.Store
	opts     Options
	log      *slog.Logger
	commands map[string]command
	seq      atomic.Uint64

	mu        sync.Mutex
	listeners []net.Listener
	sessions  map[*session]struct{}
	closing   bool
	wg        sync.WaitGroup
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
	if opts.Throttle == nil {
		opts.Throttle = auth.NewThrottle(auth.ThrottleOptions{})
	}
	proto := "imap"
	if opts.ImplicitTLS {
		proto = "imaps"
	}
	return &Server{
		st:       st,
		opts:     opts,
		log:      opts.Logger.With("proto", proto),
		commands: commandTable(),
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
			ss.serve()
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
