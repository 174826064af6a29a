// Package pop3 serves Loft's INBOXes over POP3 (RFC 1939) with CAPA and
// response codes (RFC 2449), AUTH-RESP-CODE (RFC 3206), STLS (RFC 2595)
// and SASL AUTH (RFC 5034), on a plain listener (STLS available) and an
// implicit-TLS one (pop3s).
//
// A session works on a snapshot of the INBOX taken at login: numbering is
// fixed for the session, and deletions take effect only at QUIT, through
// store.Expunge, which frees quota and tells IMAP sessions. Several POP3
// sessions of one account may run at once (each on its own snapshot)
// unless Options.Exclusive asks for the RFC 1939 maildrop lock.
package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"loft/internal/auth"
	"loft/internal/metrics"
	"loft/internal/store"
)

// Timeouts.
const (
	// DefaultIdleTimeout closes a session that sends no command for this
	// long: RFC 1939 §3's autologout timer "MUST be of at least 10
	// minutes". Nothing marked for deletion is deleted then.
	DefaultIdleTimeout = 10 * time.Minute
	// writeTimeout bounds each write to a client that stopped reading, so a
	// stuck client cannot hold a session (and an exclusive lock) forever.
	writeTimeout = time.Minute
	// handshakeTimeout bounds a TLS handshake (pop3s or after STLS).
	handshakeTimeout = 30 * time.Second
	// DefaultCommandTimeout bounds the time from the first byte of a
	// command line to its end: a client trickling a byte a minute
	// (slowloris) is dropped after it instead of holding a session for
	// the idle timeout per byte.
	DefaultCommandTimeout = 2 * time.Minute
	// DefaultMaxAuthFailures failed logins on one connection close it, so
	// that the throttle's delays cannot be sidestepped by pipelining
	// guesses.
	DefaultMaxAuthFailures = 3
)

// Options configure a Server.
type Options struct {
	// Store holds the mail.
	Store *store.Store
	// TLS, if set, is offered with STLS and used by ImplicitTLS listeners.
	TLS *tls.Config
	// Hostname is named in the greeting.
	Hostname string
	// Plaintext says where a password may be sent without TLS:
	// config.PlaintextNever, PlaintextLoopback (the default when empty) or
	// PlaintextAlways.
	Plaintext string
	// Exclusive makes a second simultaneous session of an account fail
	// with -ERR [IN-USE] (RFC 2449 §8.1.1) instead of getting a snapshot
	// of its own.
	Exclusive bool
	// MarkSeen sets \Seen on each message retrieved with RETR (not TOP).
	MarkSeen bool
	// Auth checks logins (password cache, hashing cap, SCRAM, blocking,
	// sessions per account and address); nil makes one on Store and
	// Throttle. Share one between protocols.
	Auth *auth.Authenticator
	// Throttle slows down failed logins when Auth is nil; nil uses a
	// private one with the defaults.
	Throttle *auth.Throttle
	// IdleTimeout closes a session without commands; 0 means
	// DefaultIdleTimeout. Tests shorten it.
	IdleTimeout time.Duration
	// CommandTimeout bounds reading one command line once it has begun;
	// 0 means DefaultCommandTimeout.
	CommandTimeout time.Duration
	// MaxAuthFailures failed logins close the connection; 0 means
	// DefaultMaxAuthFailures.
	MaxAuthFailures int
	Logger          *slog.Logger
	// Metrics, if set, counts commands and failed logins.
	Metrics *metrics.Metrics
}

// Server is a POP3 server. One Server may serve several listeners (pop3 and
// pop3s), which then share the exclusive-mode locks.
type Server struct {
	st   *store.Store
	opts Options
	log  *slog.Logger
	m    *metrics.Protocol // nil: no metrics
	seq  atomic.Uint64
	// closing is set once Shutdown or Close started: no new sessions, and
	// sessions stop before their next command.
	closing atomic.Bool
	// done is closed with closing set, to cut login-failure delays short.
	done     chan struct{}
	doneOnce sync.Once

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	idle      chan struct{}         // closed when the last session ends while closing
	locks     map[int64]accountLock // exclusive mode: account id -> holder
}

// accountLock records who holds an account's maildrop in exclusive mode,
// for the [IN-USE] text.
type accountLock struct {
	since  time.Time
	remote string
}

// New returns a server on opts.Store.
func New(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Auth == nil {
		opts.Auth = auth.NewAuthenticator(auth.AuthenticatorOptions{
			Accounts: opts.Store, Throttle: opts.Throttle, Logger: log})
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	if opts.MaxAuthFailures <= 0 {
		opts.MaxAuthFailures = DefaultMaxAuthFailures
	}
	return &Server{
		st:        opts.Store,
		opts:      opts,
		log:       log.With("proto", "pop3"),
		m:         opts.Metrics.Protocol(protocolSpec()),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		locks:     make(map[int64]accountLock),
		done:      make(chan struct{}),
	}
}

// stop marks the server as closing. Called with s.mu held.
func (s *Server) stop() {
	s.closing.Store(true)
	s.doneOnce.Do(func() { close(s.done) })
}

// Serve accepts connections on l until Shutdown or Close. Connections on a
// listener from tls.NewListener are taken as implicit TLS.
func (s *Server) Serve(l net.Listener) error {
	if !s.track(l) {
		l.Close()
		return nil
	}
	defer s.untrack(l)
	var delay time.Duration // backoff on temporary accept errors, as net/http
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		sess := s.newSession(conn)
		if sess == nil {
			conn.Close()
			continue
		}
		go sess.serve()
	}
}

// ImplicitTLS returns the server as a service for a pop3s listener: Serve
// wraps the listener in TLS. Shutdown and Close act on the whole server.
func (s *Server) ImplicitTLS() *TLSService { return &TLSService{s} }

// TLSService is a Server serving implicit-TLS listeners (RFC 8314 §3.3).
type TLSService struct{ *Server }

// Serve accepts TLS connections on l.
func (t *TLSService) Serve(l net.Listener) error {
	if t.opts.TLS == nil {
		l.Close()
		return errors.New("pop3s: no TLS configuration")
	}
	return t.Server.Serve(tls.NewListener(l, t.opts.TLS))
}

func (s *Server) track(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server) untrack(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

// Shutdown stops accepting connections and ends every session: an idle one
// at once, a busy one when its command is answered (a QUIT being applied
// completes). Nothing is deleted for a session that did not QUIT. After ctx
// ends, the remaining connections are closed. It may be called more than
// once, and concurrently.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stop()
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.interrupt()
	}
	var wait chan struct{}
	if len(s.sessions) > 0 {
		if s.idle == nil {
			s.idle = make(chan struct{})
		}
		wait = s.idle
	}
	s.mu.Unlock()
	if wait == nil {
		return nil
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		s.Close()
		return fmt.Errorf("pop3: shutdown: sessions still busy: %w", ctx.Err())
	}
}

// Close closes the listeners and every connection at once. Nothing marked
// for deletion is deleted.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop()
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.raw.Close()
	}
	return nil
}

// newSession registers a connection's session, or returns nil when the
// server is closing.
func (s *Server) newSession(conn net.Conn) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil
	}
	sess := newSession(s, conn, s.seq.Add(1))
	s.sessions[sess] = struct{}{}
	return sess
}

// endSession unregisters a session and releases its lock, if any.
func (s *Server) endSession(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess)
	if len(s.sessions) == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// lock takes an account's maildrop for a session in exclusive mode. When
// another session holds it, it returns the holder.
func (s *Server) lock(accountID int64, remote string) (held accountLock, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, taken := s.locks[accountID]; taken {
		return l, false
	}
	s.locks[accountID] = accountLock{since: time.Now(), remote: remote}
	return accountLock{}, true
}

func (s *Server) unlock(accountID int64) {
	s.mu.Lock()
	delete(s.locks, accountID)
	s.mu.Unlock()
}
