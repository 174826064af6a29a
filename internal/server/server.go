// Package server wires Loft together: it holds the data directory, opens
// the store, binds every configured listener (failing at once, with the
// listener named, if a port is taken), serves, and shuts down gracefully.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"loft/internal/auth"
	"loft/internal/certs"
	"loft/internal/config"
	"loft/internal/imap"
	"loft/internal/pop3"
	"loft/internal/smtp"
	"loft/internal/store"
)

// ShutdownGrace bounds how long a shutdown waits for sessions under way (a
// delivery being written) before closing them.
const ShutdownGrace = 30 * time.Second

// Listener is one bound listener.
type Listener struct {
	Name string // config key: "smtp", "lmtp", …
	Addr net.Addr
}

// Server is a running Loft.
type Server struct {
	cfg   *config.Config
	log   *slog.Logger
	Store *store.Store
	lock  *os.File
	tls   *tls.Config

	listeners []Listener
	services  []service
	wg        sync.WaitGroup
	errs      chan error
}

// service is a protocol server bound to one listener.
type service interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// Start locks the data directory, opens the store, recovers from an
// interrupted run, binds every configured listener and starts serving.
// Any failure is returned before anything is served.
func Start(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, lock: lock, errs: make(chan error, 16)}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	s.Store, err = store.Open(context.Background(), store.Options{
		Dir: cfg.DataDir, DefaultQuota: cfg.Quota.Default, Logger: log.With("component", "store")})
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.Recover(context.Background()); err != nil {
		return nil, err
	}
	s.tls, err = certs.Config(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.DataDir, cfg.Hostname)
	if err != nil {
		return nil, err
	}
	smtpOpts := smtp.Options{
		Hostname:       cfg.Hostname,
		Domains:        cfg.Domains,
		MaxMessageSize: max(cfg.SMTP.MaxMessageSize, 0), // Unlimited: go-smtp's 0
		MaxRecipients:  cfg.SMTP.MaxRecipients,
		MaxLineLength:  cfg.SMTP.MaxLineLength,
		TLS:            s.tls,
		Logger:         log,
	}
	lmtpOpts := smtpOpts
	lmtpOpts.LMTP = true
	// One throttle for every protocol: a password guesser does not get a
	// fresh allowance by switching from POP3 to IMAP.
	throttle := auth.NewThrottle(auth.ThrottleOptions{})
	// One POP3 server for both listeners, so that pop3 and pop3s sessions
	// share the exclusive-mode locks.
	pop := pop3.New(pop3.Options{
		Store:     s.Store,
		TLS:       s.tls,
		Hostname:  cfg.Hostname,
		Plaintext: cfg.Auth.Plaintext,
		Exclusive: cfg.POP3.Exclusive,
		MarkSeen:  cfg.POP3.MarkSeen,
		Throttle:  throttle,
		Logger:    log,
	})
	// One IMAP configuration for both listeners; imaps differs only in
	// speaking TLS from the start. The throttle is shared by the two.
	imapOpts := imap.Options{
		Hostname:  cfg.Hostname,
		TLS:       s.tls,
		Plaintext: cfg.Auth.Plaintext,
		Throttle:  throttle,
		Logger:    log,
	}
	imapsOpts := imapOpts
	imapsOpts.ImplicitTLS = true
	bind := []struct {
		name string
		addr string
		svc  func() service
	}{
		{"smtp", cfg.Listen.SMTP, func() service { return smtp.New(s.Store, smtpOpts) }},
		{"lmtp", cfg.Listen.LMTP, func() service { return smtp.New(s.Store, lmtpOpts) }},
		{"imap", cfg.Listen.IMAP, func() service { return imap.New(s.Store, imapOpts) }},
		{"imaps", cfg.Listen.IMAPS, func() service { return imap.New(s.Store, imapsOpts) }},
		{"pop3", cfg.Listen.POP3, func() service { return pop }},
		{"pop3s", cfg.Listen.POP3S, func() service { return pop.ImplicitTLS() }},
	}
	// Bind every listener before serving any, so that a port already in
	// use fails the start with nothing left running.
	var bound []net.Listener
	for _, b := range bind {
		if b.addr == "" {
			continue
		}
		l, err := net.Listen("tcp", b.addr)
		if err != nil {
			for _, l := range bound {
				l.Close()
			}
			return nil, fmt.Errorf("listen %s on %s: %w", b.name, b.addr, err)
		}
		bound = append(bound, l)
		s.listeners = append(s.listeners, Listener{Name: b.name, Addr: l.Addr()})
		s.services = append(s.services, b.svc())
	}
	for i, svc := range s.services {
		l, name := bound[i], s.listeners[i].Name
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := svc.Serve(l); err != nil {
				s.errs <- fmt.Errorf("%s on %s: %w", name, l.Addr(), err)
			}
		}()
	}
	for _, name := range []struct{ key, addr string }{
		{"submission", cfg.Listen.Submission},
	} {
		if name.addr != "" {
			log.Warn("listener configured but not served by this version", "listener", name.key, "addr", name.addr)
		}
	}
	ok = true
	return s, nil
}

// Listeners are the bound listeners, in start order.
func (s *Server) Listeners() []Listener { return s.listeners }

// Errors receives the error of a listener that stopped serving on its own.
func (s *Server) Errors() <-chan error { return s.errs }

// Shutdown stops accepting connections, lets sessions under way finish
// (bounded by ctx; then they are closed), and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, svc := range s.services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			svc.Close()
		}()
	}
	wg.Wait()
	s.wg.Wait()
	s.close()
	return errors.Join(errs...)
}

func (s *Server) close() {
	if s.Store != nil {
		s.Store.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
}

// lockDataDir keeps a second `loft serve` off the same data: two would each
// sweep the other's bodies under way as leftovers. The CLI's account
// commands do not take the lock; SQLite serialises their writes.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "serve.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: another loft serve is using %s", path, dir)
	}
	return f, nil
}
