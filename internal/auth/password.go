// Package auth authenticates users: password hashes now; SASL mechanisms,
// login throttling and an authentication cache later (DESIGN.md §1).
package auth

// This file holds password hashing with argon2id (RFC 9106), stored in the
// PHC string format that libsodium, Dovecot and the argon2 reference tool
// also use:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with salt and hash in unpadded standard base64.

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Parameters of new hashes. They are OWASP's documented minimum for
// argon2id (Password Storage Cheat Sheet: m=19 MiB, t=2, p=1), chosen over
// the heavier RFC 9106 choices (64 MiB or 2 GiB) because Loft runs on small
// machines (2 cores) that must verify many logins at once: every
// verification holds `memory` KiB for its whole duration, so 50 parallel
// logins need about 1 GB at 19 MiB but over 3 GB at 64 MiB. (Clients that
// reconnect often are meant to be served by the authentication cache of
// DESIGN.md §1 rather than by hashing again.) VerifyPassword reads the parameters from each stored hash, so these
// can be raised later without invalidating existing passwords; NeedsRehash
// tells when a stored hash is weaker than what these constants ask for.
const (
	// argonTime is the number of passes over the memory.
	argonTime = 2
	// argonMemory is the memory cost in KiB (19 MiB).
	argonMemory = 19 * 1024
	// argonThreads is the parallelism: 1, so that one login uses one core
	// and concurrent logins spread over the others.
	argonThreads = 1
	// saltLen is 16 bytes (128 bits), RFC 9106 §3.1's recommendation.
	saltLen = 16
	// keyLen is the length of the hash: 32 bytes (256 bits).
	keyLen = 32
)

// Bounds on parameters read from a stored hash, so that a corrupted or
// hostile hash cannot make a login allocate gigabytes or spin for minutes.
const (
	maxMemory = 1 << 20 // KiB: 1 GiB
	maxTime   = 64
	minSalt   = 8  // RFC 9106 §3.1 minimum
	minKey    = 16 // anything shorter is not a password hash worth trusting
	maxKey    = 1024
)

// argonVersion is the argon2 version that new hashes are made with and the
// only one accepted: 0x13 = 19 (the "v=19" in the string).
const argonVersion = argon2.Version

// ErrMalformedHash is wrapped by the errors VerifyPassword and NeedsRehash
// return for a stored hash they cannot read.
var ErrMalformedHash = errors.New("auth: malformed password hash")

// params are the argon2id parameters and material of one stored hash.
type params struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	hash    []byte
}

// b64 is the PHC string format's base64: standard alphabet, no padding.
var b64 = base64.RawStdEncoding

// HashPassword hashes a password with argon2id and a fresh random salt and
// returns the PHC string to store, "$argon2id$v=19$m=19456,t=2,p=1$…$…".
// Hashing the same password twice gives different strings.
func HashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: hash password: read random salt: %w", err)
	}
	hash := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argonVersion, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(hash)), nil
}

// VerifyPassword reports whether password matches encoded, a PHC string
// from HashPassword, using the parameters stored in it. The comparison takes
// the same time whichever byte differs. The error is non-nil (and wraps
// ErrMalformedHash) only when encoded cannot be read; a wrong password is
// (false, nil).
func VerifyPassword(encoded, password string) (bool, error) {
	p, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.hash)))
	return subtle.ConstantTimeCompare(got, p.hash) == 1, nil
}

// NeedsRehash reports whether encoded was made with weaker parameters than
// HashPassword uses now, so that a caller who has just verified the
// password can store a fresh hash of it. The error wraps ErrMalformedHash.
func NeedsRehash(encoded string) (bool, error) {
	p, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	return p.memory < argonMemory || p.time < argonTime || len(p.salt) < saltLen || len(p.hash) < keyLen, nil
}

// parseHash reads "$argon2id$v=19$m=M,t=T,p=P$salt$hash".
func parseHash(encoded string) (*params, error) {
	bad := func(format string, args ...any) (*params, error) {
		return nil, fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
	}
	// A leading "$" makes the first field empty.
	f := strings.Split(encoded, "$")
	if len(f) != 6 || f[0] != "" {
		return bad("want 5 fields \"$argon2id$v=19$m=…,t=…,p=…$salt$hash\", got %d", len(f)-1)
	}
	if f[1] != "argon2id" {
		return bad("algorithm %q is not argon2id", f[1])
	}
	v, ok := strings.CutPrefix(f[2], "v=")
	if !ok {
		return bad("version field %q is not v=N", f[2])
	}
	if n, err := strconv.ParseUint(v, 10, 32); err != nil || n != argonVersion {
		return bad("version %q is not %d", v, argonVersion)
	}
	p := &params{}
	pairs := strings.Split(f[3], ",")
	if len(pairs) != 3 {
		return bad("parameters %q are not m=…,t=…,p=…", f[3])
	}
	for i, pair := range pairs {
		name, value, _ := strings.Cut(pair, "=")
		if name != "mtp"[i:i+1] { // exactly m, t, p in this order
			return bad("parameters %q are not m=…,t=…,p=…", f[3])
		}
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return bad("parameter %q is not a number", pair)
		}
		switch name {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n < 1 || n > 255 {
				return bad("parallelism %d is not 1-255", n)
			}
			p.threads = uint8(n)
		}
	}
	if p.time < 1 || p.time > maxTime {
		return bad("time %d is not 1-%d", p.time, maxTime)
	}
	// RFC 9106 §3.1: memory is at least 8 KiB per lane.
	if p.memory < 8*uint32(p.threads) || p.memory > maxMemory {
		return bad("memory %d KiB is not %d-%d", p.memory, 8*uint32(p.threads), maxMemory)
	}
	var err error
	if p.salt, err = b64.Strict().DecodeString(f[4]); err != nil || len(p.salt) < minSalt {
		return bad("salt is not base64 of at least %d bytes", minSalt)
	}
	if p.hash, err = b64.Strict().DecodeString(f[5]); err != nil || len(p.hash) < minKey || len(p.hash) > maxKey {
		return bad("hash is not base64 of %d-%d bytes", minKey, maxKey)
	}
	return p, nil
}
