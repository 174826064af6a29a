package auth

// This file holds SCRAM-SHA-256 (RFC 7677, on RFC 5802's SCRAM), the SASL
// mechanism that proves knowledge of the password without sending it:
// the server keeps only StoredKey = H(HMAC(SaltedPassword, "Client Key"))
// and ServerKey = HMAC(SaltedPassword, "Server Key"), which do not let
// anyone log in, and the client proves it can compute ClientKey. They are
// kept beside the argon2id hash (store.Credentials.SCRAMSHA256) in the
// format PostgreSQL uses:
//
//	SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
//
// with standard padded base64. Channel binding (SCRAM-SHA-256-PLUS) is not
// offered: the TLS that Loft requires for passwords protects the exchange.

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

	"golang.org/x/text/secure/precis"
)

// SCRAMSHA256 is the mechanism's SASL name.
const SCRAMSHA256 = "SCRAM-SHA-256"

const (
	// scramIterations is the PBKDF2 iteration count of new keys: four
	// times RFC 7677 §4's minimum of 4096 (and Dovecot's default). Every
	// client login pays it, on the client; an attacker holding a stolen
	// database pays it per guess, which stays far cheaper than argon2id —
	// the price of a mechanism that never sends the password (SECURITY.md).
	scramIterations = 16384
	// scramMinIterations and scramMaxIterations bound what a stored value
	// may ask of clients.
	scramMinIterations = 4096
	scramMaxIterations = 10_000_000
	// scramSaltLen is 16 bytes, as for argon2id.
	scramSaltLen = 16
	// scramNonceLen random bytes make the server's part of the nonce.
	scramNonceLen = 18
	scramPrefix   = SCRAMSHA256 + "$"
)

// ErrMalformedSCRAM is wrapped by the errors ParseSCRAM returns.
var ErrMalformedSCRAM = errors.New("auth: malformed SCRAM-SHA-256 keys")

// scramKeys are an account's SCRAM-SHA-256 stored keys.
type scramKeys struct {
	iterations int
	salt       []byte
	storedKey  []byte // H(ClientKey)
	serverKey  []byte
}

// HashSCRAM computes the SCRAM-SHA-256 stored keys of password with a
// fresh random salt, in the string format to store.
func HashSCRAM(password string) (string, error) {
	salt := make([]byte, scramSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: SCRAM keys: read random salt: %w", err)
	}
	k, err := deriveSCRAM(password, salt, scramIterations)
	if err != nil {
		return "", err
	}
	return k.String(), nil
}

// deriveSCRAM computes the keys of RFC 5802 §3 for password.
func deriveSCRAM(password string, salt []byte, iterations int) (*scramKeys, error) {
	salted, err := pbkdf2.Key(sha256.New, normalizePassword(password), salt, iterations, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("auth: SCRAM keys: %w", err)
	}
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	stored := sha256.Sum256(clientKey)
	return &scramKeys{
		iterations: iterations,
		salt:       salt,
		storedKey:  stored[:],
		serverKey:  hmacSHA256(salted, []byte("Server Key")),
	}, nil
}

// normalizePassword prepares a password as RFC 7677 asks (SASLprep, RFC
// 4013), through its successor, the PRECIS OpaqueString profile (RFC
// 8265): the same for every ASCII password, and for others it maps the
// Unicode forms a client may send to one. A password the profile rejects
// (control characters) is used as it is, as clients do.
func normalizePassword(password string) string {
	if p, err := precis.OpaqueString.String(password); err == nil {
		return p
	}
	return password
}

func (k *scramKeys) String() string {
	b := base64.StdEncoding
	return fmt.Sprintf("%s%d:%s$%s:%s", scramPrefix, k.iterations,
		b.EncodeToString(k.salt), b.EncodeToString(k.storedKey), b.EncodeToString(k.serverKey))
}

// parseSCRAM reads stored keys written by HashSCRAM.
func parseSCRAM(s string) (*scramKeys, error) {
	bad := func(why string) (*scramKeys, error) { return nil, fmt.Errorf("%w: %s", ErrMalformedSCRAM, why) }
	rest, ok := strings.CutPrefix(s, scramPrefix)
	if !ok {
		return bad("no " + scramPrefix + " prefix")
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return bad("want <iterations>:<salt>$<StoredKey>:<ServerKey>")
	}
	iter, salt, ok1 := strings.Cut(params, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return bad("want <iterations>:<salt>$<StoredKey>:<ServerKey>")
	}
	k := &scramKeys{}
	n, err := strconv.Atoi(iter)
	if err != nil || n < scramMinIterations || n > scramMaxIterations {
		return bad(fmt.Sprintf("iterations %q are not %d-%d", iter, scramMinIterations, scramMaxIterations))
	}
	k.iterations = n
	b := base64.StdEncoding.Strict()
	if k.salt, err = b.DecodeString(salt); err != nil || len(k.salt) < minSalt {
		return bad("salt is not base64 of at least 8 bytes")
	}
	if k.storedKey, err = b.DecodeString(stored); err != nil || len(k.storedKey) != sha256.Size {
		return bad("StoredKey is not base64 of 32 bytes")
	}
	if k.serverKey, err = b.DecodeString(server); err != nil || len(k.serverKey) != sha256.Size {
		return bad("ServerKey is not base64 of 32 bytes")
	}
	return k, nil
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// scramServer is the server side of one SCRAM-SHA-256 exchange, up to the
// proof check; the Authenticator looks the user up and counts failures.
type scramServer struct {
	step        int
	nonce       string // client's and server's, as sent in server-first
	gs2Header   string // as the client sent it, for the channel-binding check
	clientFirst string // client-first-message-bare, for AuthMessage
	serverFirst string
	username    string
	keys        *scramKeys
}

// readClientFirst parses client-first-message (RFC 5802 §7) and returns
// the user name.
func (s *scramServer) readClientFirst(msg string) (string, error) {
	// gs2-header = gs2-cbind-flag "," [ authzid ] ","
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return "", fmt.Errorf("%w: no GS2 header", ErrMalformedResponse)
	}
	switch {
	case flag == "n", flag == "y": // no channel binding; "y": the client could, but we do not offer -PLUS
	case strings.HasPrefix(flag, "p="):
		return "", fmt.Errorf("%w: channel binding requested but SCRAM-SHA-256-PLUS is not offered", ErrMalformedResponse)
	default:
		return "", fmt.Errorf("%w: bad GS2 channel-binding flag", ErrMalformedResponse)
	}
	authzid, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return "", fmt.Errorf("%w: no GS2 header", ErrMalformedResponse)
	}
	s.gs2Header = flag + "," + authzid + ","
	s.clientFirst = bare
	if strings.HasPrefix(bare, "m=") {
		return "", fmt.Errorf("%w: mandatory extension not supported", ErrMalformedResponse)
	}
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return "", fmt.Errorf("%w: want n=user,r=nonce", ErrMalformedResponse)
	}
	user, err := decodeSASLName(attrs[0][2:])
	if err != nil {
		return "", err
	}
	cnonce := attrs[1][2:]
	if cnonce == "" || !printable(cnonce) {
		return "", fmt.Errorf("%w: bad client nonce", ErrMalformedResponse)
	}
	if authzid != "" {
		a, ok := strings.CutPrefix(authzid, "a=")
		if !ok {
			return "", fmt.Errorf("%w: bad authzid", ErrMalformedResponse)
		}
		if a, err = decodeSASLName(a); err != nil {
			return "", err
		}
		if !strings.EqualFold(a, user) {
			return "", ErrAuthzID
		}
	}
	if user == "" {
		return "", fmt.Errorf("%w: empty user name", ErrMalformedResponse)
	}
	s.username = user
	s.nonce = cnonce
	return user, nil
}

// serverFirstMessage answers client-first with keys (real or made up for
// an unknown user: the answer must look the same).
func (s *scramServer) serverFirstMessage(keys *scramKeys, serverNonce string) string {
	s.keys = keys
	s.nonce += serverNonce
	s.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", s.nonce, base64.StdEncoding.EncodeToString(keys.salt), keys.iterations)
	return s.serverFirst
}

// checkClientFinal parses client-final-message and checks the proof; on
// success it returns server-final-message ("v=…").
func (s *scramServer) checkClientFinal(msg string) (serverFinal string, ok bool, err error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return "", false, fmt.Errorf("%w: no proof", ErrMalformedResponse)
	}
	withoutProof, proofB64 := msg[:i], msg[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return "", false, fmt.Errorf("%w: want c=…,r=…,p=…", ErrMalformedResponse)
	}
	cb, err := base64.StdEncoding.DecodeString(attrs[0][2:])
	if err != nil || string(cb) != s.gs2Header {
		return "", false, fmt.Errorf("%w: channel binding does not match the GS2 header", ErrMalformedResponse)
	}
	if attrs[1][2:] != s.nonce {
		return "", false, fmt.Errorf("%w: nonce does not match", ErrMalformedResponse)
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != sha256.Size {
		return "", false, fmt.Errorf("%w: bad proof", ErrMalformedResponse)
	}
	authMessage := []byte(s.clientFirst + "," + s.serverFirst + "," + withoutProof)
	clientSignature := hmacSHA256(s.keys.storedKey, authMessage)
	clientKey := make([]byte, sha256.Size)
	subtle.XORBytes(clientKey, proof, clientSignature)
	got := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(got[:], s.keys.storedKey) != 1 {
		return "", false, nil
	}
	serverSignature := hmacSHA256(s.keys.serverKey, authMessage)
	return "v=" + base64.StdEncoding.EncodeToString(serverSignature), true, nil
}

// decodeSASLName undoes RFC 5802 §5.1's escaping of ',' and '=' in names.
func decodeSASLName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", fmt.Errorf("%w: bad escape in user name", ErrMalformedResponse)
		}
		i += 2
	}
	return b.String(), nil
}

// printable: RFC 5802's printable, %x21-2B / %x2D-7E.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}
