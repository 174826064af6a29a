// Package server wires Loft together: it holds the data directory, opens
// the store, binds every configured listener (failing at once, with the
// listener named, if a port is taken), serves, and shuts down gracefully.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"loft/internal/metrics"
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
	certs *certs.Holder
	// stopWatch ends the certificate file watch.
	stopWatch context.CancelFunc
	// metrics is nil unless listen.metrics is set.
	metrics *metrics.Metrics

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
	// Mail, password hashes and keys are for Loft's user alone.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	if fi, err := os.Stat(cfg.DataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("data directory is accessible to other users; chmod 700 it", "data_dir", cfg.DataDir,
			"mode", fi.Mode().Perm().String())
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
	var observeCommit func(time.Duration)
	if cfg.Listen.Metrics != "" {
		s.metrics = metrics.New(metrics.Options{Usage: s.usage})
		observeCommit = s.metrics.ObserveCommit
	}
	s.Store, err = store.Open(context.Background(), store.Options{
		Dir: cfg.DataDir, DefaultQuota: cfg.Quota.Default, Logger: log.With("component", "store"),
		ObserveCommit: observeCommit})
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.Recover(context.Background()); err != nil {
		return nil, err
	}
	if err := s.startTLS(); err != nil {
		return nil, err
	}
	lim := cfg.Limits
	smtpOpts := smtp.Options{
		Hostname:              cfg.Hostname,
		Domains:               cfg.Domains,
		MaxMessageSize:        max(cfg.SMTP.MaxMessageSize, 0), // Unlimited: go-smtp's 0
		MaxRecipients:         cfg.SMTP.MaxRecipients,
		MaxLineLength:         cfg.SMTP.MaxLineLength,
		TLS:                   s.tls,
		IdleTimeout:           lim.IdleTimeout,
		CommandTimeout:        lim.CommandTimeout,
		MaxMessagesPerSession: lim.MaxMessagesPerSession,
		Logger:                log,
		Metrics:               s.metrics,
	}
	lmtpOpts := smtpOpts
	lmtpOpts.LMTP = true
	// One throttle and one authenticator for every protocol: a password
	// guesser does not get a fresh allowance by switching from POP3 to
	// IMAP, and a login cached over one serves the other.
	throttle := auth.NewThrottle(auth.ThrottleOptions{
		BlockAfter: cfg.Auth.BlockAfter,
		BlockFor:   cfg.Auth.BlockFor,
		Logger:     log.With("component", "auth"),
	})
	authn := auth.NewAuthenticator(auth.AuthenticatorOptions{
		Accounts:                s.Store,
		Throttle:                throttle,
		MaxSessionsPerAccountIP: lim.MaxSessionsPerAccountIP,
		Logger:                  log.With("component", "auth"),
	})
	// One POP3 server for both listeners, so that pop3 and pop3s sessions
	// share the exclusive-mode locks.
	pop := pop3.New(pop3.Options{
		Store:           s.Store,
		TLS:             s.tls,
		Hostname:        cfg.Hostname,
		Plaintext:       cfg.Auth.Plaintext,
		Exclusive:       cfg.POP3.Exclusive,
		MarkSeen:        cfg.POP3.MarkSeen,
		Auth:            authn,
		IdleTimeout:     lim.IdleTimeout,
		CommandTimeout:  lim.CommandTimeout,
		MaxAuthFailures: lim.MaxAuthAttempts,
		Logger:          log,
		Metrics:         s.metrics,
	})
	// One IMAP configuration for both listeners; imaps differs only in
	// speaking TLS from the start. The throttle is shared by the two.
	imapOpts := imap.Options{
		Hostname:        cfg.Hostname,
		TLS:             s.tls,
		Plaintext:       cfg.Auth.Plaintext,
		Auth:            authn,
		IdleTimeout:     lim.IdleTimeout, // 0: IMAP's own 30 minutes
		CommandTimeout:  lim.CommandTimeout,
		MaxLineLength:   lim.MaxCommandLine,
		MaxAuthFailures: lim.MaxAuthAttempts,
		Logger:          log,
		Metrics:         s.metrics,
	}
	imapsOpts := imapOpts
	imapsOpts.ImplicitTLS = true
	// Connection limits count every listener together.
	conns := newConnLimits(lim.MaxConnections, lim.MaxConnectionsPerIP)
	bind := []struct {
		name    string
		addr    string
		svc     func() service
		refuse  refusal
		blocked bool // refuse addresses blocked after failed logins
		// direct: served as bound, without the connection limits and
		// counting of the mail listeners (the metrics endpoint).
		direct bool
	}{
		{"smtp", cfg.Listen.SMTP, func() service { return smtp.New(s.Store, smtpOpts) }, smtpRefusal(cfg.Hostname), false, false},
		{"lmtp", cfg.Listen.LMTP, func() service { return smtp.New(s.Store, lmtpOpts) }, smtpRefusal(cfg.Hostname), false, false},
		{"imap", cfg.Listen.IMAP, func() service { return imap.New(s.Store, imapOpts) }, imapRefusal, true, false},
		{"imaps", cfg.Listen.IMAPS, func() service { return imap.New(s.Store, imapsOpts) }, silentRefusal, true, false},
		{"pop3", cfg.Listen.POP3, func() service { return pop }, pop3Refusal, true, false},
		{"pop3s", cfg.Listen.POP3S, func() service { return pop.ImplicitTLS() }, silentRefusal, true, false},
		{name: "metrics", addr: cfg.Listen.Metrics, svc: func() service { return newMetricsService(s.metrics, log) }, direct: true},
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
		if !b.direct {
			ll := &limitedListener{Listener: l, name: b.name, limits: conns, refuse: b.refuse,
				counted: s.metrics.Refused(b.name), log: log}
			if b.blocked {
				ll.blocked = authn.Blocked
			}
			// Counted beneath the protocol, so that every session knows
			// its bytes on the wire for its log line (and, with metrics,
			// each listener its connections).
			l = s.metrics.Listener(b.name, ll)
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

// startTLS loads the certificate (files, ACME or self-signed) and, for
// files, starts watching them for changes.
func (s *Server) startTLS() error {
	cfg := s.cfg
	opts := certs.Options{
		CertFile: cfg.TLS.CertFile,
		KeyFile:  cfg.TLS.KeyFile,
		DataDir:  cfg.DataDir,
		Hostname: cfg.Hostname,
		Logger:   s.log,
	}
	if cfg.TLS.ACME {
		a := &certs.ACME{
			Directory: cfg.TLS.ACMEDirectory,
			Email:     cfg.TLS.ACMEEmail,
			Hosts:     cfg.TLS.ACMEHosts,
			HTTPPort:  cfg.TLS.ACMEHTTPPort,
			TLSPort:   cfg.TLS.ACMETLSPort,
		}
		if cfg.TLS.ACMECARoot != "" {
			pem, err := os.ReadFile(cfg.TLS.ACMECARoot)
			if err != nil {
				return fmt.Errorf("tls.acme_ca_root: %w", err)
			}
			a.Roots = x509.NewCertPool()
			if !a.Roots.AppendCertsFromPEM(pem) {
				return fmt.Errorf("tls.acme_ca_root %s: no PEM certificate", cfg.TLS.ACMECARoot)
			}
		}
		opts.ACME = a
	}
	h, err := certs.New(opts)
	if err != nil {
		return err
	}
	s.certs, s.tls = h, h.TLSConfig()
	ctx, cancel := context.WithCancel(context.Background())
	s.stopWatch = cancel
	go h.Watch(ctx, certs.DefaultWatchInterval)
	return nil
}

// ReloadTLS reads the certificate files again (SIGHUP). New connections get
// the new certificate; on error the current one stays in use.
func (s *Server) ReloadTLS() error {
	if err := s.certs.Reload(); err != nil {
		return err
	}
	s.log.Info("certificate reloaded", "not_after", s.certs.Certificate().Leaf.NotAfter)
	return nil
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
	if s.stopWatch != nil {
		s.stopWatch()
	}
	if s.certs != nil {
		s.certs.Close()
	}
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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: another loft serve is using %s", path, dir)
	}
	return f, nil
}
