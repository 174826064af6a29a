package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writePair generates a certificate for name with the package's own
// generator and copies it to cert.pem and key.pem in a fresh directory, as
// an administrator's files would be.
func writePair(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	src := t.TempDir()
	if _, err := generate(src, name, time.Now()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	copyFile(t, filepath.Join(src, certFileName), certFile)
	copyFile(t, filepath.Join(src, keyFileName), keyFile)
	return certFile, keyFile
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSelfSignedGenerated(t *testing.T) {
	dataDir := t.TempDir()
	h, err := NewHolder("", "", dataDir, "Mail.Example.org")
	if err != nil {
		t.Fatal(err)
	}
	leaf := h.Certificate().Leaf
	if !slices.Equal(leaf.DNSNames, []string{"mail.example.org", "localhost"}) {
		t.Errorf("DNSNames = %q", leaf.DNSNames)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"127.0.0.1", "::1"}) {
		t.Errorf("IPAddresses = %q", ips)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 10*365*24*time.Hour {
		t.Errorf("valid for %v, want 10 years", life)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("ExtKeyUsage = %v, want server auth", leaf.ExtKeyUsage)
	}

	key, err := os.Stat(filepath.Join(dataDir, "tls", "selfsigned.key"))
	if err != nil {
		t.Fatal(err)
	}
	if key.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", key.Mode().Perm())
	}
	certPEM, err := os.ReadFile(filepath.Join(dataDir, "tls", "selfsigned.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tls.X509KeyPair(certPEM, mustRead(t, filepath.Join(dataDir, "tls", "selfsigned.key"))); err != nil ||
		!bytes.Equal(c.Certificate[0], h.Certificate().Certificate[0]) {
		t.Errorf("files do not hold the served certificate: %v", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dataDir, "tls", ".*.tmp"))
	if len(tmps) != 0 {
		t.Errorf("temp files left: %q", tmps)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSelfSignedReusedOnNextStart(t *testing.T) {
	dataDir := t.TempDir()
	first, err := NewHolder("", "", dataDir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	second, err := NewHolder("", "", dataDir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Certificate().Certificate[0], second.Certificate().Certificate[0]) {
		t.Error("second start made a new certificate")
	}
	if err := second.Reload(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Certificate().Certificate[0], second.Certificate().Certificate[0]) {
		t.Error("Reload made a new certificate")
	}
}

func TestSelfSignedRegeneratedForNewHostname(t *testing.T) {
	dataDir := t.TempDir()
	first, err := NewHolder("", "", dataDir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	second, err := NewHolder("", "", dataDir, "mail.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first.Certificate().Certificate[0], second.Certificate().Certificate[0]) {
		t.Fatal("certificate for localhost reused for mail.example.org")
	}
	if err := second.Certificate().Leaf.VerifyHostname("mail.example.org"); err != nil {
		t.Error(err)
	}
}

func TestSelfSignedRegeneratedBeforeExpiry(t *testing.T) {
	dataDir := t.TempDir()
	old, err := generate(filepath.Join(dataDir, "tls"), "localhost", time.Now().Add(-selfSignedValidity+renewBefore/2))
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHolder("", "", dataDir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(old.Certificate[0], h.Certificate().Certificate[0]) {
		t.Error("certificate expiring in 15 days was reused")
	}
}

// TestSelfSignedRecoversFromTornPair: a crash between writing the key and
// the certificate leaves files of two generations; the next start must not
// be stuck on them.
func TestSelfSignedRecoversFromTornPair(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "tls")
	if _, err := generate(dir, "localhost", time.Now()); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := generate(other, "localhost", time.Now()); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(other, keyFileName), filepath.Join(dir, keyFileName))
	h, err := NewHolder("", "", dataDir, "localhost")
	if err != nil {
		t.Fatalf("NewHolder with a torn pair: %v", err)
	}
	handshake(t, h.TLSConfig(), h.Certificate().Leaf, "localhost")

	// And a missing certificate file alone.
	os.Remove(filepath.Join(dir, certFileName))
	if _, err := NewHolder("", "", dataDir, "localhost"); err != nil {
		t.Fatalf("NewHolder without the certificate file: %v", err)
	}
}

func TestSelfSignedUnwritableDirectoryNamesIt(t *testing.T) {
	// A data directory that is a file: the tls directory cannot be made.
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(dataDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Config("", "", dataDir, "localhost")
	if err == nil || !strings.Contains(err.Error(), dataDir) {
		t.Errorf("Config = %v, want an error naming %s", err, dataDir)
	}
}

func TestLoadFromFiles(t *testing.T) {
	certFile, keyFile := writePair(t, "mail.example.org")
	dataDir := t.TempDir()
	cfg, err := Config(certFile, keyFile, dataDir, "ignored.example")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "mail.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Certificate[0], want.Certificate[0]) {
		t.Error("served certificate is not the one in cert_file")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "tls")); !os.IsNotExist(err) {
		t.Errorf("a self-signed certificate was made although files were given (stat: %v)", err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
}

func TestBadFilesNameTheFile(t *testing.T) {
	certFile, keyFile := writePair(t, "mail.example.org")
	otherCert, otherKey := writePair(t, "mail.example.org")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badDER := filepath.Join(dir, "bad-der.pem")
	if err := os.WriteFile(badDER, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badKey := filepath.Join(dir, "bad-key.pem")
	if err := os.WriteFile(badKey, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name, cert, key string
		names           []string // the error must name each
		says            string   // and contain this
	}{
		{"missing cert", missing, keyFile, []string{missing}, "no such file"},
		{"missing key", certFile, missing, []string{missing}, "no such file"},
		{"garbage cert", garbage, keyFile, []string{garbage}, "no PEM \"CERTIFICATE\" block"},
		{"garbage key", certFile, garbage, []string{garbage}, "no PEM private key"},
		{"cert does not parse", badDER, keyFile, []string{badDER}, "certificate 1"},
		{"key does not parse", certFile, badKey, []string{badKey}, "does not parse"},
		{"swapped", keyFile, certFile, []string{keyFile}, "swapped"},
		{"mismatched pair", certFile, otherKey, []string{certFile, otherKey}, "does not match"},
		{"cert without key", otherCert, "", []string{otherCert}, "without key_file"},
		{"key without cert", "", otherKey, []string{otherKey}, "without cert_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Config(tt.cert, tt.key, t.TempDir(), "localhost")
			if err == nil {
				t.Fatal("Config succeeded")
			}
			for _, n := range tt.names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name %s", err, n)
				}
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

func TestHolderReload(t *testing.T) {
	certFile, keyFile := writePair(t, "mail.example.org")
	h, err := NewHolder(certFile, keyFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.TLSConfig()
	before := h.Certificate()

	// Renewed files: Reload serves them through the same tls.Config.
	newCert, newKey := writePair(t, "mail.example.org")
	copyFile(t, newCert, certFile)
	copyFile(t, newKey, keyFile)
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	after, _ := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if bytes.Equal(after.Certificate[0], before.Certificate[0]) {
		t.Error("Reload did not pick up the new certificate")
	}

	// A broken file: Reload fails and the working certificate stays.
	if err := os.WriteFile(certFile, []byte("oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Errorf("Reload with a broken file = %v, want an error naming it", err)
	}
	if still, _ := cfg.GetCertificate(&tls.ClientHelloInfo{}); still != after {
		t.Error("failed Reload replaced the certificate")
	}
}

// handshake runs a TLS handshake over 127.0.0.1 between a server using cfg
// and a client that trusts leaf and verifies serverName, and checks that
// data crosses.
func handshake(t *testing.T, cfg *tls.Config, leaf *x509.Certificate, serverName string) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
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
		c.Write([]byte("* OK Loft ready\r\n"))
	}()
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		t.Fatalf("handshake for %s: %v", serverName, err)
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "* OK Loft ready\r\n" {
		t.Errorf("read %q, %v", got, err)
	}
	if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Errorf("negotiated version %x", v)
	}
}

func TestHandshakeWithSelfSigned(t *testing.T) {
	h, err := NewHolder("", "", t.TempDir(), "mail.example.org")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mail.example.org", "localhost", "127.0.0.1", "::1"} {
		handshake(t, h.TLSConfig(), h.Certificate().Leaf, name)
	}
}

func TestHandshakeWithFiles(t *testing.T) {
	certFile, keyFile := writePair(t, "mail.example.org")
	cfg, err := Config(certFile, keyFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cfg.GetCertificate(nil)
	handshake(t, cfg, c.Leaf, "mail.example.org")
}

func TestRejectsTLS11(t *testing.T) {
	cfg, err := Config("", "", t.TempDir(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	done := make(chan error, 1)
	go func() { done <- tls.Server(server, cfg).Handshake() }()
	err = tls.Client(client, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}).Handshake()
	if err == nil {
		t.Error("a TLS 1.1 client completed a handshake")
	}
	client.Close()
	if err := <-done; err == nil {
		t.Error("server accepted TLS 1.1")
	}
}
