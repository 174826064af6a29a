// Package certs provides the server's TLS configuration, shared by every
// listener (implicit TLS and STARTTLS/STLS): the certificate comes from the
// configured cert_file and key_file, from an ACME CA such as Let's Encrypt
// (acme.go, through certmagic), or else from a self-signed certificate that
// Loft generates once in its data directory.
//
// The certificate sits in a Holder, which tls.Config reads through
// GetCertificate on each handshake, so that Holder.Reload (on SIGHUP, or
// when Watch sees the files change) and ACME renewals change it for new
// connections without a restart.
package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// minVersion is TLS 1.2 (DESIGN.md §3): TLS 1.0 and 1.1 are deprecated by
// RFC 8996, and every mail client of the last decade speaks 1.2.
const minVersion = tls.VersionTLS12

// cipherSuites are the TLS 1.2 suites offered (TLS 1.3's are fixed by Go
// and all modern): forward-secret ECDHE key exchange with AEAD ciphers
// only, as RFC 9325 §4.2 recommends. Go's defaults would add ECDHE with
// AES-CBC and SHA-1 MACs, kept there only for old browsers. Clients that
// need anything else predate TLS 1.2 and are refused anyway.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// DefaultWatchInterval is how often Watch looks at the certificate files:
// a renewed certificate (certbot, an operator's copy) is served within
// seconds, while a stat of two files that often costs nothing.
const DefaultWatchInterval = 10 * time.Second

// Options say where the certificate comes from.
type Options struct {
	// CertFile and KeyFile are PEM files (cert_file, key_file): both or
	// neither.
	CertFile, KeyFile string
	// DataDir holds the self-signed certificate (DataDir/tls) and ACME
	// state (DataDir/acme).
	DataDir string
	// Hostname is the self-signed certificate's name and the default ACME
	// host.
	Hostname string
	// ACME, if set, obtains and renews the certificate from an ACME CA;
	// CertFile and KeyFile must then be empty.
	ACME *ACME
	// Logger receives reloads and ACME events; nil discards them.
	Logger *slog.Logger
}

// Config returns the server TLS configuration: with certFile and keyFile,
// the certificate in those PEM files; with neither, a self-signed
// certificate for hostname kept in dataDir/tls/ (selfsigned.crt and
// selfsigned.key, the key mode 0600), generated on first use and reused on
// later starts (regenerated if hostname is not among its names or it
// expires within 30 days). The minimum version is TLS 1.2. Errors name the
// file at fault.
//
// Use NewHolder instead to be able to reload the certificate.
func Config(certFile, keyFile, dataDir, hostname string) (*tls.Config, error) {
	h, err := NewHolder(certFile, keyFile, dataDir, hostname)
	if err != nil {
		return nil, err
	}
	return h.TLSConfig(), nil
}

// Holder holds the current server certificate and where it comes from. It
// is safe for concurrent use: handshakes read the certificate while Reload
// replaces it.
type Holder struct {
	certFile, keyFile string // configured files; both empty for self-signed
	dataDir, hostname string // self-signed: where and for whom
	log               *slog.Logger

	reload sync.Mutex // one Reload at a time (a self-signed one writes files)
	cert   atomic.Pointer[tls.Certificate]
	// acme, when ACME is configured, serves the CA's certificate; cert is
	// then the self-signed fallback used until the first one is obtained.
	acme *acmeManager
}

// NewHolder loads the certificate as Config describes and returns a Holder
// serving it.
func NewHolder(certFile, keyFile, dataDir, hostname string) (*Holder, error) {
	return New(Options{CertFile: certFile, KeyFile: keyFile, DataDir: dataDir, Hostname: hostname})
}

// New returns a Holder serving the certificate opts describe. With ACME,
// it starts obtaining the certificate in the background and serves a
// self-signed one meanwhile, so that the server starts even while the CA
// is unreachable; call Close to stop renewals.
func New(opts Options) (*Holder, error) {
	certFile, keyFile, dataDir := opts.CertFile, opts.KeyFile, opts.DataDir
	switch {
	case certFile != "" && keyFile == "":
		return nil, fmt.Errorf("certs: cert_file %s given without key_file", certFile)
	case certFile == "" && keyFile != "":
		return nil, fmt.Errorf("certs: key_file %s given without cert_file", keyFile)
	case certFile == "" && dataDir == "":
		return nil, errors.New("certs: no cert_file and no data directory for a self-signed certificate")
	case certFile != "" && opts.ACME != nil:
		return nil, errors.New("certs: acme and cert_file are exclusive: choose one")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Holder{certFile: certFile, keyFile: keyFile, dataDir: dataDir, hostname: opts.Hostname,
		log: log.With("component", "tls")}
	if err := h.Reload(); err != nil {
		return nil, err
	}
	if opts.ACME != nil {
		m, err := startACME(h, *opts.ACME)
		if err != nil {
			return nil, err
		}
		h.acme = m
	}
	return h, nil
}

// Close stops ACME renewals, if any. Certificates already served stay
// valid; GetCertificate goes on returning the last ones.
func (h *Holder) Close() {
	if h.acme != nil {
		h.acme.stop()
	}
}

// Watch reloads the certificate files whenever their size or modification
// time changes, checking every interval (DefaultWatchInterval if 0), until
// ctx ends. It does nothing for a self-signed or ACME certificate. A
// failed reload (a half-copied file, say) is logged and tried again at the
// next change or tick, while the current certificate stays in use.
func (h *Holder) Watch(ctx context.Context, interval time.Duration) {
	if h.certFile == "" {
		return
	}
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	last := h.fileStamp()
	failed := false
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := h.fileStamp()
		if now == last && !failed {
			continue
		}
		last = now
		if err := h.Reload(); err != nil {
			if !failed {
				h.log.Warn("certificate files changed but do not load; still serving the previous certificate", "err", err)
			}
			failed = true
			continue
		}
		failed = false
		h.log.Info("certificate files changed: reloaded", "cert_file", h.certFile,
			"not_after", h.Certificate().Leaf.NotAfter)
	}
}

// fileStamp identifies the current content of the certificate files
// cheaply: size and modification time of each (a rename of a new file
// over the old one changes both, as certbot and cp do).
func (h *Holder) fileStamp() [4]int64 {
	var st [4]int64
	for i, f := range []string{h.certFile, h.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			st[2*i], st[2*i+1] = fi.Size(), fi.ModTime().UnixNano()
		}
	}
	return st
}

// Reload reads the certificate again from its files (for a self-signed
// one: reuses or regenerates it as at start). New handshakes use the new
// certificate; on error the current one stays in use.
func (h *Holder) Reload() error {
	h.reload.Lock()
	defer h.reload.Unlock()
	var (
		c   *tls.Certificate
		err error
	)
	if h.certFile != "" {
		c, err = loadFiles(h.certFile, h.keyFile)
	} else {
		c, err = selfSigned(h.dataDir, h.hostname, time.Now())
	}
	if err != nil {
		return err
	}
	h.cert.Store(c)
	return nil
}

// Certificate returns the certificate from files or the self-signed one
// (with ACME: the fallback used until the CA's arrives); its Leaf is set.
func (h *Holder) Certificate() *tls.Certificate {
	return h.cert.Load()
}

// GetCertificate returns the certificate now served, whatever the client
// asked for; it is tls.Config.GetCertificate. With ACME, it is the CA's
// certificate once obtained, the self-signed fallback before.
func (h *Holder) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if h.acme != nil {
		if c, err := h.acme.getCertificate(hello); err == nil && c != nil {
			return c, nil
		}
	}
	return h.cert.Load(), nil
}

// TLSConfig returns a server tls.Config that serves h's certificate, TLS
// 1.2 or later with the cipherSuites. Each call returns a new Config.
func (h *Holder) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     minVersion,
		CipherSuites:   cipherSuites,
		GetCertificate: h.GetCertificate,
	}
}

// loadFiles reads a PEM certificate chain and its private key, with errors
// that say which file is wrong.
func loadFiles(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certs: cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: key_file: %w", err)
	}
	if err := checkCertPEM(certPEM); err != nil {
		return nil, fmt.Errorf("certs: cert_file %s: %w", certFile, err)
	}
	if err := checkKeyPEM(keyPEM); err != nil {
		return nil, fmt.Errorf("certs: key_file %s: %w", keyFile, err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: cert_file %s with key_file %s: %w", certFile, keyFile, err)
	}
	return &c, nil
}

// checkCertPEM checks that data holds PEM certificates that parse, the
// first being the server's own.
func checkCertPEM(data []byte) error {
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				return fmt.Errorf("certificate %d: %w", n+1, err)
			}
			n++
		} else if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			return errors.New("holds a private key: cert_file and key_file swapped?")
		}
	}
	if n == 0 {
		return errors.New("no PEM \"CERTIFICATE\" block")
	}
	return nil
}

// checkKeyPEM checks that data holds a PEM private key that parses (PKCS
// #8, PKCS #1 or SEC 1, as tls.X509KeyPair accepts).
func checkKeyPEM(data []byte) error {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return errors.New("no PEM private key block")
		}
		if b.Type == "PRIVATE KEY" || strings.HasSuffix(b.Type, " PRIVATE KEY") {
			_, err := parsePrivateKey(b.Bytes)
			return err
		}
	}
}

// parsePrivateKey parses a DER private key in any of the forms
// tls.X509KeyPair accepts.
func parsePrivateKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		switch k := k.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return k.(crypto.Signer), nil
		}
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("private key does not parse (want PKCS #8, PKCS #1 or SEC 1 DER in PEM)")
}
