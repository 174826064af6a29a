package certs

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"loft/internal/certs/pebbletest"
)

// waitForCA polls h until it serves a certificate that verifies against
// the CA's roots for name, and returns it.
func waitForCA(t *testing.T, h *Holder, ca *pebbletest.CA, name string) *tls.Certificate {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := h.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err == nil && c != h.Certificate() {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no certificate from the CA within 60 s")
	return nil
}

// handshakeWithRoots connects to a TLS listener serving h and verifies the
// chain against ca's issuer roots, as a mail client trusting that CA does.
func handshakeWithRoots(t *testing.T, h *Holder, ca *pebbletest.CA, name string) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", h.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("+OK\r\n"))
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.IssuerRoots, ServerName: name})
	if err != nil {
		t.Fatalf("client trusting the CA: %v", err)
	}
	conn.Close()
}

func testACME(t *testing.T, httpChallenge bool) {
	ca := pebbletest.Start(t)
	a := &ACME{
		Directory:  ca.Directory,
		Email:      "postmaster@localhost",
		Hosts:      []string{"localhost"},
		ListenHost: "127.0.0.1",
		Roots:      ca.DirectoryRoots,
	}
	if httpChallenge {
		a.HTTPPort = ca.HTTPPort
	} else {
		a.TLSPort = ca.TLSPort
	}
	dataDir := tempDir(t)
	h, err := New(Options{DataDir: dataDir, Hostname: "localhost", ACME: a})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c := waitForCA(t, h, ca, "localhost")
	if c.Leaf == nil || c.Leaf.VerifyHostname("localhost") != nil {
		t.Fatalf("certificate for %v", c.Leaf)
	}
	handshakeWithRoots(t, h, ca, "localhost")
	// A client sending no server name (or an IP address) gets it too.
	if c2, _ := h.GetCertificate(&tls.ClientHelloInfo{}); c2 == h.Certificate() {
		t.Error("without SNI the self-signed fallback is served")
	}

	// The account and certificate are kept, private, for the next start.
	var files int
	filepath.Walk(filepath.Join(dataDir, "acme"), func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			files++
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %v", path, fi.Mode().Perm())
			}
		}
		return nil
	})
	if files == 0 {
		t.Error("nothing stored under acme/")
	}
}

func TestACMEObtainsCertificateWithTLSALPN01(t *testing.T) { testACME(t, false) }

func TestACMEObtainsCertificateWithHTTP01(t *testing.T) { testACME(t, true) }

func TestACMEServesSelfSignedUntilObtained(t *testing.T) {
	// A directory nobody answers: the server still starts, on the
	// fallback.
	h, err := New(Options{DataDir: tempDir(t), Hostname: "localhost", ACME: &ACME{
		Directory: "https://127.0.0.1:1/dir", TLSPort: pebbletest.FreePort(t), ListenHost: "127.0.0.1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := h.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
	if err != nil || c != h.Certificate() {
		t.Fatalf("GetCertificate = %v, %v; want the self-signed fallback", c, err)
	}
}

func TestACMEWithCertFileIsAnError(t *testing.T) {
	certFile, keyFile := writePair(t, "localhost")
	if _, err := New(Options{CertFile: certFile, KeyFile: keyFile, DataDir: t.TempDir(), ACME: &ACME{TLSPort: 443}}); err == nil {
		t.Fatal("acme with cert_file accepted")
	}
}

// tempDir is t.TempDir for certmagic, whose goroutines may still write a
// lock file for a moment after Close: removal is retried, then given up.
func tempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "loft-acme-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 20 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return dir
}
