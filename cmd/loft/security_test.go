package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"loft/internal/auth"
	"loft/internal/auth/authtest"
)

// writeCertFiles writes a fresh certificate for localhost into the two
// files, each replaced by a rename as certbot does, and returns it.
func writeCertFiles(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	for path, block := range map[string]*pem.Block{
		keyFile:  {Type: "PRIVATE KEY", Bytes: keyDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
	} {
		if err := os.WriteFile(path+".new", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// starttlsCert returns the certificate an SMTP STARTTLS at addr shows.
func starttlsCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, netTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gosmtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Noop(); err != nil { // the handshake happens on first use
		t.Fatal(err)
	}
	state, _ := c.TLSConnectionState()
	return state.PeerCertificates[0]
}

// TestServeReloadsCertificateOnSIGHUP replaces the certificate files under
// a running `loft serve` and sends SIGHUP: new handshakes get the new
// certificate, and the server goes on.
func TestServeReloadsCertificateOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCertFiles(t, certFile, keyFile)
	path, _ := writeConfig(t, dir, fmt.Sprintf("[tls]\ncert_file = %q\nkey_file = %q\n", certFile, keyFile))
	s := serve(t, cli{dir: dir}, []string{"smtp"}, "--config", path)
	if !starttlsCert(t, s.listeners["smtp"]).Equal(first) {
		t.Fatal("not serving cert_file")
	}
	second := writeCertFiles(t, certFile, keyFile)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !starttlsCert(t, s.listeners["smtp"]).Equal(second) {
		if time.Now().After(deadline) {
			t.Fatalf("old certificate still served after SIGHUP\nstderr: %s", s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	greeting(t, s.listeners["smtp"])
	s.stop()
}

// TestAccountCommandsStoreSCRAMKeys: account add and passwd store SCRAM
// keys of the new password beside its argon2id hash.
func TestAccountCommandsStoreSCRAMKeys(t *testing.T) {
	dir := t.TempDir()
	path, dataDir := writeConfig(t, dir, "")
	const alice = "alice@example.test"
	cli{dir: dir, stdin: "first pw\n"}.ok(t, "account", "add", alice, "--config", path)
	scramLogin := func(password string) error {
		st := openTestStore(t, dataDir)
		defer st.Close()
		a := auth.NewAuthenticator(auth.AuthenticatorOptions{Accounts: st,
			Throttle: auth.NewThrottle(auth.ThrottleOptions{FailureDelay: time.Millisecond})})
		ctx := context.Background()
		ex, err := a.Start(auth.SCRAMSHA256, netip.MustParseAddr("127.0.0.1"))
		if err != nil {
			return err
		}
		c := authtest.NewSCRAMClient(alice, password, "")
		first, _, err := ex.Next(ctx, []byte(c.First()))
		if err != nil {
			return err
		}
		final, err := c.Final(string(first))
		if err != nil {
			return err
		}
		v, _, err := ex.Next(ctx, []byte(final))
		if err != nil {
			return err
		}
		return c.Verify(string(v))
	}
	if err := scramLogin("first pw"); err != nil {
		t.Fatalf("SCRAM after account add: %v", err)
	}
	cli{dir: dir, stdin: "second pw\n"}.ok(t, "account", "passwd", alice, "--config", path)
	if err := scramLogin("first pw"); err == nil {
		t.Fatal("SCRAM with the old password after account passwd")
	}
	if err := scramLogin("second pw"); err != nil {
		t.Fatalf("SCRAM after account passwd: %v", err)
	}
}
