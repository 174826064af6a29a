package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"testing"
	"time"
)

// replacePair puts a newly generated certificate into certFile and
// keyFile, each by rename (as certbot and careful operators do).
func replacePair(t *testing.T, certFile, keyFile string) {
	t.Helper()
	newCert, newKey := writePair(t, "mail.example.org")
	for from, to := range map[string]string{newKey: keyFile, newCert: certFile} {
		tmp := to + ".tmp"
		copyFile(t, from, tmp)
		if err := os.Rename(tmp, to); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWatchReloadsChangedFiles: replaced certificate files are served by
// new handshakes without a restart or a signal.
func TestWatchReloadsChangedFiles(t *testing.T) {
	certFile, keyFile := writePair(t, "mail.example.org")
	h, err := NewHolder(certFile, keyFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	old := h.Certificate()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Watch(ctx, 20*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // the watch has taken its first look

	// A half-written key first: not loaded, the old certificate stays.
	os.WriteFile(keyFile, []byte("-----BEGIN PRIVATE KEY-----\n"), 0o600)
	time.Sleep(100 * time.Millisecond)
	if h.Certificate() != old {
		t.Fatal("a broken key file replaced the certificate")
	}
	replacePair(t, certFile, keyFile)
	want, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := servedBy(t, h.TLSConfig())
		if bytes.Equal(c, want.Certificate[0]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replaced files not served within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// servedBy returns the DER certificate a handshake with cfg shows.
func servedBy(t *testing.T, cfg *tls.Config) []byte {
	t.Helper()
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	go tls.Server(server, cfg).Handshake()
	tc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc.ConnectionState().PeerCertificates[0].Raw
}

func TestWatchIgnoresSelfSigned(t *testing.T) {
	h, err := NewHolder("", "", t.TempDir(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		h.Watch(context.Background(), time.Millisecond) // returns at once
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Watch of a self-signed certificate did not return")
	}
}

// TestOnlyModernCipherSuites: TLS 1.2 clients get forward-secret AEAD
// suites only; CBC and static-RSA suites are refused.
func TestOnlyModernCipherSuites(t *testing.T) {
	h, err := NewHolder("", "", t.TempDir(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	try := func(suite uint16) error {
		server, client := net.Pipe()
		defer server.Close()
		defer client.Close()
		go tls.Server(server, h.TLSConfig()).Handshake()
		return tls.Client(client, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{suite}}).Handshake()
	}
	if err := try(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err != nil {
		t.Errorf("ECDHE-ECDSA-AES128-GCM refused: %v", err)
	}
	if err := try(tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256); err != nil {
		t.Errorf("ECDHE-ECDSA-CHACHA20-POLY1305 refused: %v", err)
	}
	for _, weak := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	} {
		if err := try(weak); err == nil {
			t.Errorf("%s accepted", tls.CipherSuiteName(weak))
		}
	}
}
