// ACME (RFC 8555): the certificate is obtained and renewed from a CA such
// as Let's Encrypt through github.com/caddyserver/certmagic, answering the
// CA's TLS-ALPN-01 (RFC 8737) and HTTP-01 challenges on listeners of its
// own (ports 443 and 80 by default: mail ports cannot carry them).
// Accounts, keys and certificates are kept under DataDir/acme (directories
// 0700, files 0600), so a restart reuses them instead of asking the CA
// again.

package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// LetsEncrypt is the production directory of Let's Encrypt, the default
// acme_directory.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// ACME configures obtaining the certificate from an ACME CA.
type ACME struct {
	// Directory is the CA's directory URL (LetsEncrypt by default).
	Directory string
	// Email is given to the CA for expiry notices; may be empty.
	Email string
	// Hosts are the names the certificate covers; empty means the
	// Holder's Hostname. Clients must use one of them as server name.
	Hosts []string
	// HTTPPort is where the HTTP-01 challenge is answered (the CA always
	// connects to port 80, so anything else needs a port forward); 0
	// turns HTTP-01 off.
	HTTPPort int
	// TLSPort is where the TLS-ALPN-01 challenge is answered (the CA
	// connects to 443); 0 turns TLS-ALPN-01 off.
	TLSPort int
	// ListenHost is the address the challenge listeners bind ("" for
	// all).
	ListenHost string
	// Roots are the roots trusted for the directory's HTTPS; nil means the
	// system's. Needed only for a private CA (tests run one).
	Roots *x509.CertPool
}

// acmeManager runs certmagic for one Holder.
type acmeManager struct {
	cache  *certmagic.Cache
	cfg    *certmagic.Config
	cancel context.CancelFunc
}

// startACME starts obtaining (or loading from DataDir/acme) the
// certificate for a.Hosts in the background.
func startACME(h *Holder, a ACME) (*acmeManager, error) {
	if a.HTTPPort == 0 && a.TLSPort == 0 {
		return nil, errors.New("certs: acme: both challenges are off (acme_http_port and acme_tls_port are 0)")
	}
	var hosts []string
	for _, host := range a.Hosts {
		hosts = append(hosts, strings.ToLower(host))
	}
	if len(hosts) == 0 {
		hosts = []string{strings.ToLower(h.hostname)}
	}
	if a.Directory == "" {
		a.Directory = LetsEncrypt
	}
	log := h.log.With("acme", a.Directory)
	nop := zap.NewNop() // Loft logs certmagic's events itself, through slog
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           nop,
	})
	cfg = certmagic.New(cache, certmagic.Config{
		Storage:            &certmagic.FileStorage{Path: filepath.Join(h.dataDir, "acme")},
		DefaultServerName:  hosts[0],
		FallbackServerName: hosts[0],
		// Let's Encrypt ended OCSP in 2025; stapling would only make
		// requests to responders that are not there.
		OCSP:   certmagic.OCSPConfig{DisableStapling: true},
		Logger: nop,
		OnEvent: func(_ context.Context, event string, data map[string]any) error {
			switch event {
			case "cert_obtained":
				log.Info("certificate obtained", "hosts", hosts, "renewal", data["renewal"])
			case "cert_failed":
				log.Warn("obtaining the certificate failed; will retry", "hosts", hosts,
					"renewal", data["renewal"], "err", data["error"])
			}
			return nil
		},
	})
	issuer := certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA:                      a.Directory,
		TestCA:                  a.Directory, // never fall back to staging on failure
		Email:                   a.Email,
		Agreed:                  true,
		DisableHTTPChallenge:    a.HTTPPort == 0,
		DisableTLSALPNChallenge: a.TLSPort == 0,
		AltHTTPPort:             a.HTTPPort,
		AltTLSALPNPort:          a.TLSPort,
		ListenHost:              a.ListenHost,
		TrustedRoots:            a.Roots,
		Logger:                  nop,
	})
	cfg.Issuers = []certmagic.Issuer{issuer}
	ctx, cancel := context.WithCancel(context.Background())
	if err := cfg.ManageAsync(ctx, hosts); err != nil {
		cancel()
		cache.Stop()
		return nil, fmt.Errorf("certs: acme %s for %s: %w", a.Directory, strings.Join(hosts, ", "), err)
	}
	log.Info("managing certificate", "hosts", hosts, "http_port", a.HTTPPort, "tls_port", a.TLSPort)
	return &acmeManager{cache: cache, cfg: cfg, cancel: cancel}, nil
}

// getCertificate returns the CA's certificate for hello, or an error while
// none has been obtained yet.
func (m *acmeManager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	// certmagic logs the connection's address: give callers outside a
	// handshake (tests, Certificate checks) one.
	if hello == nil || hello.Conn == nil {
		h := &tls.ClientHelloInfo{Conn: noConn{}}
		if hello != nil {
			h.ServerName = hello.ServerName
		}
		hello = h
	}
	return m.cfg.GetCertificate(hello)
}

// noConn stands for the connection of a ClientHelloInfo made outside a
// handshake; only its addresses are ever asked for.
type noConn struct{ net.Conn }

func (noConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }
func (noConn) LocalAddr() net.Addr  { return &net.TCPAddr{} }

func (m *acmeManager) stop() {
	m.cancel()
	m.cache.Stop()
}
