// Package pebbletest runs Let's Encrypt's test CA, pebble
// (github.com/letsencrypt/pebble), inside a test process on 127.0.0.1, so
// that ACME issuance can be tested end to end without any network: the
// CA's validation authority connects back to the challenge ports on
// loopback, as Let's Encrypt would connect to ports 80 and 443.
package pebbletest

import (
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// CA is a running pebble.
type CA struct {
	// Directory is the ACME directory URL (https on 127.0.0.1).
	Directory string
	// DirectoryRoots trusts the directory's HTTPS certificate, which
	// DirectoryCerts holds (to write into a PEM file).
	DirectoryRoots *x509.CertPool
	DirectoryCerts []*x509.Certificate
	// IssuerRoots trusts the certificates the CA issues.
	IssuerRoots *x509.CertPool
	// HTTPPort and TLSPort are where the validation authority connects
	// for HTTP-01 and TLS-ALPN-01 challenges: the ACME client must answer
	// there.
	HTTPPort, TLSPort int
}

// Start runs pebble until the test ends. Its random delays and bad-nonce
// injection are turned off so that issuance takes about a second. Set
// LOFT_PEBBLE_LOG=1 to see its log on standard error.
func Start(t testing.TB) *CA {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	httpPort, tlsPort := FreePort(t), FreePort(t)
	// Pebble's goroutines outlive the test, so they cannot log through t.
	var w io.Writer = io.Discard
	if os.Getenv("LOFT_PEBBLE_LOG") != "" {
		w = os.Stderr
	}
	logger := log.New(w, "pebble ", log.Lmicroseconds)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "default profile"},
	})
	validator := va.New(logger, httpPort, tlsPort, false, "", store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewUnstartedServer(front.Handler())
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dirRoots := x509.NewCertPool()
	dirRoots.AddCert(srv.Certificate())
	issuerRoots := x509.NewCertPool()
	issuerRoots.AddCert(authority.GetRootCert(0).Cert)
	return &CA{
		Directory:      srv.URL + wfe.DirectoryPath,
		DirectoryRoots: dirRoots,
		DirectoryCerts: []*x509.Certificate{srv.Certificate()},
		IssuerRoots:    issuerRoots,
		HTTPPort:       httpPort,
		TLSPort:        tlsPort,
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
