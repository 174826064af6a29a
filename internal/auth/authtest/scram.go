// Package authtest holds the client side of SASL mechanisms whose client
// no library provides, for tests of every protocol that offers them.
package authtest

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SCRAMClient is the client side of one SCRAM-SHA-256 exchange (RFC 5802,
// RFC 7677), without channel binding.
type SCRAMClient struct {
	user, password string
	nonce          string
	clientFirst    string // bare
	serverSig      []byte
}

// NewSCRAMClient starts an exchange for user with password. Nonce, if not
// empty, replaces the random client nonce (for test vectors).
func NewSCRAMClient(user, password, nonce string) *SCRAMClient {
	if nonce == "" {
		b := make([]byte, 18)
		rand.Read(b)
		nonce = base64.RawStdEncoding.EncodeToString(b)
	}
	return &SCRAMClient{user: user, password: password, nonce: nonce}
}

// First returns client-first-message.
func (c *SCRAMClient) First() string {
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user)
	c.clientFirst = "n=" + name + ",r=" + c.nonce
	return "n,," + c.clientFirst
}

// Final answers server-first-message with client-final-message.
func (c *SCRAMClient) Final(serverFirst string) (string, error) {
	var nonce, salt64, iter string
	for _, a := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(a, "r="):
			nonce = a[2:]
		case strings.HasPrefix(a, "s="):
			salt64 = a[2:]
		case strings.HasPrefix(a, "i="):
			iter = a[2:]
		}
	}
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return "", errors.New("scram: server nonce does not extend ours")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return "", fmt.Errorf("scram: salt: %v", err)
	}
	n, err := strconv.Atoi(iter)
	if err != nil || n < 1 {
		return "", fmt.Errorf("scram: iterations %q", iter)
	}
	salted, err := pbkdf2.Key(sha256.New, c.password, salt, n, sha256.Size)
	if err != nil {
		return "", err
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	withoutProof := "c=biws,r=" + nonce
	authMessage := c.clientFirst + "," + serverFirst + "," + withoutProof
	proof := make([]byte, sha256.Size)
	subtle.XORBytes(proof, clientKey, mac(stored[:], authMessage))
	c.serverSig = mac(mac(salted, "Server Key"), authMessage)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

// Verify checks server-final-message.
func (c *SCRAMClient) Verify(serverFinal string) error {
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if !ok {
		return fmt.Errorf("scram: server-final %q", serverFinal)
	}
	sig, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !hmac.Equal(sig, c.serverSig) {
		return errors.New("scram: wrong server signature")
	}
	return nil
}

func mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
