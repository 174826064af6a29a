package server

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"loft/internal/certs/pebbletest"
	"loft/internal/config"
)

// testConfig is the quickstart with every listener on a free loopback
// port and data in a temp dir, changed by edit.
func testConfig(t *testing.T, edit func(*config.Config)) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Listen = config.Listen{
		SMTP: "127.0.0.1:0", LMTP: "127.0.0.1:0", IMAP: "127.0.0.1:0",
		IMAPS: "127.0.0.1:0", POP3: "127.0.0.1:0", POP3S: "127.0.0.1:0",
	}
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// start runs a server until the test ends and returns its listener
// addresses by name.
func start(t *testing.T, cfg *config.Config) (*Server, map[string]string) {
	t.Helper()
	srv, err := Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	addrs := map[string]string{}
	for _, l := range srv.Listeners() {
		addrs[l.Name] = l.Addr.String()
	}
	return srv, addrs
}

// firstLine connects to addr (from local, if set) and returns the first
// line the server sends, or "" if it closes without a word; the
// connection is returned open.
func firstLine(t *testing.T, addr, local string) (string, net.Conn) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.SetReadDeadline(time.Time{})
	return strings.TrimRight(line, "\r\n"), c
}

// closedWithoutWord checks that c is closed by the server with nothing
// sent.
func closedWithoutWord(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if len(b) != 0 || err != nil {
		t.Fatalf("want a silent close, got %q, %v", b, err)
	}
}

func TestConnectionLimitsRefuseInEachProtocolsWords(t *testing.T) {
	cfg := testConfig(t, func(c *config.Config) {
		c.Limits.MaxConnectionsPerIP = 2
		c.Limits.MaxConnections = 3
	})
	_, addrs := start(t, cfg)
	// Two connections from 127.0.0.1, on any listeners, use its share.
	if l, _ := firstLine(t, addrs["pop3"], ""); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("pop3 greeting %q", l)
	}
	_, held := firstLine(t, addrs["smtp"], "")
	for _, tc := range []struct{ listener, want string }{
		{"smtp", "421 4.7.0 localhost Too many connections from your address; try again later"},
		{"lmtp", "421 4.7.0 localhost Too many connections from your address; try again later"},
		{"pop3", "-ERR [SYS/TEMP] Too many connections from your address; try again later"},
		{"imap", "* BYE [UNAVAILABLE] Too many connections from your address; try again later"},
		{"pop3s", ""},
		{"imaps", ""},
	} {
		if got, _ := firstLine(t, addrs[tc.listener], ""); got != tc.want {
			t.Errorf("%s over the per-address limit: %q, want %q", tc.listener, got, tc.want)
		}
	}
	// Another address has its own share, until the total is reached.
	if l, _ := firstLine(t, addrs["pop3"], "127.0.0.2"); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("other address: %q", l)
	}
	if got, _ := firstLine(t, addrs["pop3"], "127.0.0.3"); got != "-ERR [SYS/TEMP] Too many connections; try again later" {
		t.Fatalf("over the total: %q", got)
	}
	// A closed connection frees its place.
	held.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, c := firstLine(t, addrs["smtp"], "")
		c.Close()
		if strings.HasPrefix(l, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("place not freed: %q", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBlockedAddressRefusedAtConnect(t *testing.T) {
	cfg := testConfig(t, func(c *config.Config) { c.Auth.BlockAfter = 3 })
	_, addrs := start(t, cfg)
	// Three wrong passwords over POP3 from 127.0.0.1.
	line, c := firstLine(t, addrs["pop3"], "")
	if !strings.HasPrefix(line, "+OK") {
		t.Fatal(line)
	}
	r := bufio.NewReader(c)
	for range 3 {
		io.WriteString(c, "USER nobody@localhost\r\nPASS wrong\r\n")
		r.ReadString('\n')
		r.ReadString('\n')
	}
	want := map[string]string{
		"pop3": "-ERR [SYS/TEMP] Too many failed logins from your address; try again later",
		"imap": "* BYE [UNAVAILABLE] Too many failed logins from your address; try again later",
	}
	for name, w := range want {
		if got, _ := firstLine(t, addrs[name], ""); got != w {
			t.Errorf("%s from a blocked address: %q, want %q", name, got, w)
		}
	}
	if got, _ := firstLine(t, addrs["pop3s"], ""); got != "" {
		t.Errorf("pop3s from a blocked address: %q, want a silent close", got)
	}
	// Mail keeps flowing: SMTP takes no passwords.
	if got, _ := firstLine(t, addrs["smtp"], ""); !strings.HasPrefix(got, "220 ") {
		t.Errorf("smtp from a blocked address: %q", got)
	}
	// Others are served.
	if got, _ := firstLine(t, addrs["pop3"], "127.0.0.2"); !strings.HasPrefix(got, "+OK") {
		t.Errorf("pop3 from another address: %q", got)
	}
}

func TestImplicitTLSRefusalIsSilent(t *testing.T) {
	cfg := testConfig(t, func(c *config.Config) { c.Limits.MaxConnectionsPerIP = 1 })
	_, addrs := start(t, cfg)
	firstLine(t, addrs["smtp"], "")
	c, err := net.Dial("tcp", addrs["pop3s"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closedWithoutWord(t, c)
}

// writeCert writes a fresh self-signed certificate for name into
// certFile and keyFile (replacing them by rename, as certbot does) and
// returns it.
func writeCert(t *testing.T, certFile, keyFile, name string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{keyFile, "PRIVATE KEY", keyDER}, {certFile, "CERTIFICATE", der}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// servedCert returns the certificate a TLS handshake with addr shows.
func servedCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func TestReplacedCertificateServedWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, certFile, keyFile, "localhost")
	cfg := testConfig(t, func(c *config.Config) { c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile })
	srv, addrs := start(t, cfg)
	if got := servedCert(t, addrs["pop3s"]); !got.Equal(first) {
		t.Fatal("not serving cert_file")
	}
	second := writeCert(t, certFile, keyFile, "localhost")
	if err := srv.ReloadTLS(); err != nil { // what SIGHUP does
		t.Fatal(err)
	}
	for _, l := range []string{"pop3s", "imaps"} {
		if got := servedCert(t, addrs[l]); !got.Equal(second) {
			t.Errorf("%s serves the old certificate after reload", l)
		}
	}
	// STARTTLS too.
	c, err := net.Dial("tcp", addrs["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	r.ReadString('\n')
	io.WriteString(c, "EHLO x\r\n")
	for {
		l, _ := r.ReadString('\n')
		if strings.HasPrefix(l, "250 ") {
			break
		}
	}
	io.WriteString(c, "STARTTLS\r\n")
	r.ReadString('\n')
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if !tc.ConnectionState().PeerCertificates[0].Equal(second) {
		t.Error("STARTTLS serves the old certificate after reload")
	}
}

func TestDataDirectoryIsPrivate(t *testing.T) {
	cfg := testConfig(t, nil)
	start(t, cfg)
	for _, p := range []struct {
		path string
		mode os.FileMode
	}{
		{"", 0o700},
		{"loft.db", 0o600},
		{"serve.lock", 0o600},
		{"blobs", 0o700},
		{"tls/selfsigned.key", 0o600},
	} {
		fi, err := os.Stat(filepath.Join(cfg.DataDir, p.path))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != p.mode {
			t.Errorf("%s: mode %v, want %v", filepath.Join(cfg.DataDir, p.path), got, p.mode)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(cfg.DataDir, "loft.db-*"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v", m, fi.Mode().Perm())
		}
	}
}

// TestACMECertificateVerifiedByIMAPSClient: pebble issues a certificate
// through the configured [tls] acme keys, and an IMAPS client that
// trusts pebble's root verifies the server with it.
func TestACMECertificateVerifiedByIMAPSClient(t *testing.T) {
	ca := pebbletest.Start(t)
	rootFile := filepath.Join(t.TempDir(), "pebble-directory-root.pem")
	var pemRoots []byte
	for _, c := range ca.DirectoryCerts {
		pemRoots = append(pemRoots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(rootFile, pemRoots, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, func(c *config.Config) {
		c.TLS.ACME = true
		c.TLS.ACMEDirectory = ca.Directory
		c.TLS.ACMECARoot = rootFile
		c.TLS.ACMEEmail = "postmaster@localhost"
		c.TLS.ACMEHosts = []string{"localhost"}
		c.TLS.ACMETLSPort = ca.TLSPort
		c.TLS.ACMEHTTPPort = 0
	})
	_, addrs := start(t, cfg)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := tls.Dial("tcp", addrs["imaps"], &tls.Config{RootCAs: ca.IssuerRoots, ServerName: "localhost"})
		if err == nil {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			greeting, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil || !strings.HasPrefix(greeting, "* OK") {
				t.Fatalf("IMAPS greeting %q, %v", greeting, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verifiable certificate within 60 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
