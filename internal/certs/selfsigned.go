// The self-signed certificate used when no cert_file is configured: made
// once, kept in the data directory, reused while it still fits.

package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Where and how long the self-signed certificate lives.
const (
	tlsDirName   = "tls"            // under the data directory
	certFileName = "selfsigned.crt" // PEM certificate, mode 0644
	keyFileName  = "selfsigned.key" // PEM PKCS #8 key, mode 0600
	// selfSignedValidity is long because nobody renews a self-signed
	// certificate, and clients that accepted it once should not be asked
	// again soon.
	selfSignedValidity = 10 * 365 * 24 * time.Hour
	// renewBefore: a certificate expiring sooner than this is replaced at
	// start, rather than letting it expire under a running server.
	renewBefore = 30 * 24 * time.Hour
	// clockSkew backdates NotBefore so that a client whose clock is a little
	// behind accepts a certificate made a moment ago.
	clockSkew = time.Hour
)

// selfSigned returns the self-signed certificate for hostname kept in
// dataDir/tls, generating it if it is missing, unusable (for example a key
// and certificate of different generations after a crash between the two
// writes), not valid for hostname or expiring within renewBefore.
// Read errors other than a missing file are reported, not papered over.
func selfSigned(dataDir, hostname string, now time.Time) (*tls.Certificate, error) {
	hostname = strings.ToLower(hostname)
	if hostname == "" {
		hostname = "localhost"
	}
	dir := filepath.Join(dataDir, tlsDirName)
	certPath, keyPath := filepath.Join(dir, certFileName), filepath.Join(dir, keyFileName)

	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	for _, err := range []error{certErr, keyErr} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("certs: self-signed certificate: %w", err)
		}
	}
	if certErr == nil && keyErr == nil {
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err == nil && c.Leaf.VerifyHostname(hostname) == nil && now.Add(renewBefore).Before(c.Leaf.NotAfter) {
			return &c, nil
		}
	}
	return generate(dir, hostname, now)
}

// generate makes a new self-signed certificate for hostname (also valid for
// localhost, 127.0.0.1 and ::1, so that local clients can always verify it)
// and writes it into dir.
func generate(dir, hostname string, now time.Time) (*tls.Certificate, error) {
	// ECDSA P-256: universally supported, small and fast to sign with.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certs: generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hostname, Organization: []string{"Loft self-signed"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, name := range []string{hostname, "localhost"} {
		if ip := net.ParseIP(name); ip != nil {
			if !ip.IsLoopback() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if len(tmpl.DNSNames) == 0 || tmpl.DNSNames[0] != name {
			tmpl.DNSNames = append(tmpl.DNSNames, name)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse new certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode key: %w", err)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: self-signed certificate: %w", err)
	}
	// Key first: a crash between the two renames leaves a pair that does
	// not match, which selfSigned replaces on the next start.
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeFileAtomic(filepath.Join(dir, keyFileName), keyPEM, 0o600); err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFileAtomic(filepath.Join(dir, certFileName), certPEM, 0o644); err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// writeFileAtomic writes data to path so that path holds either its old
// content or all of data, even across a crash: temp file in the same
// directory, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("certs: write %s: %w", path, err)
		}
	}()
	// CreateTemp makes the file 0600 already: a key is never readable by
	// others, not even for a moment. Chmod only widens a certificate.
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
