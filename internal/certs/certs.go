// Package certs provides the server's TLS configuration, shared by every
// listener (implicit TLS and STARTTLS/STLS): the certificate comes from the
// configured cert_file and key_file, or else from a self-signed certificate
// that Loft generates once in its data directory.
//
// The certificate sits in a Holder, which tls.Config reads through
// GetCertificate on each handshake, so that Holder.Reload (on SIGHUP, or
// after ACME renewal, later) changes it for new connections without a
// restart.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// minVersion is TLS 1.2 (DESIGN.md §3): TLS 1.0 and 1.1 are deprecated by
// RFC 8996, and every mail client of the last decade speaks 1.2.
const minVersion = tls.VersionTLS12

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

	reload sync.Mutex // one Reload at a time (a self-signed one writes files)
	cert   atomic.Pointer[tls.Certificate]
}

// NewHolder loads the certificate as Config describes and returns a Holder
// serving it.
func NewHolder(certFile, keyFile, dataDir, hostname string) (*Holder, error) {
	switch {
	case certFile != "" && keyFile == "":
		return nil, fmt.Errorf("certs: cert_file %s given without key_file", certFile)
	case certFile == "" && keyFile != "":
		return nil, fmt.Errorf("certs: key_file %s given without cert_file", keyFile)
	case certFile == "" && dataDir == "":
		return nil, errors.New("certs: no cert_file and no data directory for a self-signed certificate")
	}
	h := &Holder{certFile: certFile, keyFile: keyFile, dataDir: dataDir, hostname: hostname}
	if err := h.Reload(); err != nil {
		return nil, err
	}
	return h, nil
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

// Certificate returns the certificate now served; its Leaf is set.
func (h *Holder) Certificate() *tls.Certificate {
	return h.cert.Load()
}

// GetCertificate returns the certificate now served, whatever the client
// asked for; it is tls.Config.GetCertificate.
func (h *Holder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.cert.Load(), nil
}

// TLSConfig returns a server tls.Config that serves h's certificate, TLS
// 1.2 or later. Each call returns a new Config.
func (h *Holder) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     minVersion,
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
