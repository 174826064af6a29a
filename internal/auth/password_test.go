package auth

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestHashPasswordRoundTrip(t *testing.T) {
	for _, pw := range []string{"correct horse battery staple", "", "ünïcödé pässwörd", strings.Repeat("x", 1000)} {
		h, err := HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := VerifyPassword(h, pw)
		if err != nil || !ok {
			t.Errorf("VerifyPassword(HashPassword(%.20q)) = %v, %v; want true, nil", pw, ok, err)
		}
	}
}

func TestVerifyPasswordRejectsWrongPassword(t *testing.T) {
	h, err := HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	for _, wrong := range []string{"Secret", "secret ", "secre", "", "secret\x00"} {
		ok, err := VerifyPassword(h, wrong)
		if err != nil || ok {
			t.Errorf("VerifyPassword(h, %q) = %v, %v; want false, nil", wrong, ok, err)
		}
	}
}

func TestHashPasswordFormat(t *testing.T) {
	h, err := HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	// 16-byte salt and 32-byte hash in unpadded base64: 22 and 43 characters.
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(h) {
		t.Errorf("HashPassword = %q, want to match %s", h, re)
	}
	h2, err := HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	if h == h2 {
		t.Errorf("two hashes of one password are equal (%q): salt not random", h)
	}
}

// TestVerifyPasswordReferenceVector checks interoperability with the argon2
// reference implementation (its test.c vector for argon2id, v=19,
// m=65536, t=2, p=1), and that parameters come from the string.
func TestVerifyPasswordReferenceVector(t *testing.T) {
	const ref = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	ok, err := VerifyPassword(ref, "password")
	if err != nil || !ok {
		t.Errorf("VerifyPassword(reference, \"password\") = %v, %v; want true, nil", ok, err)
	}
	if ok, _ := VerifyPassword(ref, "passwore"); ok {
		t.Error("reference hash accepts a wrong password")
	}
}

// TestVerifyPasswordHonoursStoredParameters checks that hashes made with
// other parameters than today's still verify, so that the constants can
// change.
func TestVerifyPasswordHonoursStoredParameters(t *testing.T) {
	tests := []struct {
		memory, time uint32
		threads      uint8
		saltLen      int
		keyLen       uint32
	}{
		{8192, 1, 1, 16, 32},
		{16384, 3, 2, 8, 16},
		{19456, 2, 4, 32, 64},
	}
	for _, tt := range tests {
		salt := []byte(strings.Repeat("s", tt.saltLen))
		key := argon2.IDKey([]byte("pw"), salt, tt.time, tt.memory, tt.threads, tt.keyLen)
		h := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", tt.memory, tt.time, tt.threads, b64.EncodeToString(salt), b64.EncodeToString(key))

		p, err := parseHash(h)
		if err != nil {
			t.Fatalf("parseHash(%q): %v", h, err)
		}
		if p.memory != tt.memory || p.time != tt.time || p.threads != tt.threads ||
			string(p.salt) != string(salt) || string(p.hash) != string(key) {
			t.Errorf("parseHash(%q) = %+v", h, p)
		}
		if ok, err := VerifyPassword(h, "pw"); err != nil || !ok {
			t.Errorf("VerifyPassword(%q) = %v, %v; want true, nil", h, ok, err)
		}
		if ok, err := VerifyPassword(h, "px"); err != nil || ok {
			t.Errorf("VerifyPassword(%q, wrong) = %v, %v; want false, nil", h, ok, err)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	current, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		hash string
		want bool
	}{
		{current, false},
		{"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", true},            // 8-byte salt
		{"$argon2id$v=19$m=8192,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", true},  // less memory
		{"$argon2id$v=19$m=65536,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", true}, // fewer passes
		{"$argon2id$v=19$m=65536,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", false},
	}
	for _, tt := range tests {
		got, err := NeedsRehash(tt.hash)
		if err != nil || got != tt.want {
			t.Errorf("NeedsRehash(%q) = %v, %v; want %v", tt.hash, got, err, tt.want)
		}
	}
	if _, err := NeedsRehash("$2y$10$abc"); !errors.Is(err, ErrMalformedHash) {
		t.Errorf("NeedsRehash(bcrypt) error = %v, want ErrMalformedHash", err)
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	const salt, hash = "c29tZXNhbHQ", "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	for _, h := range []string{
		"",
		"password",
		"$argon2id$",
		"$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", // bcrypt
		"$argon2i$v=19$m=65536,t=2,p=1$" + salt + "$" + hash,
		"$argon2d$v=19$m=65536,t=2,p=1$" + salt + "$" + hash,
		"argon2id$v=19$m=65536,t=2,p=1$" + salt + "$" + hash,
		"$argon2id$v=16$m=65536,t=2,p=1$" + salt + "$" + hash,
		"$argon2id$19$m=65536,t=2,p=1$" + salt + "$" + hash,
		"$argon2id$m=65536,t=2,p=1$" + salt + "$" + hash, // no version field
		"$argon2id$v=19$m=65536,t=2$" + salt + "$" + hash,
		"$argon2id$v=19$t=2,m=65536,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=65536,t=2,p=1,x=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=abc,t=2,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=-1,t=2,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=65536,t=0,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=65536,t=1000,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=65536,t=2,p=0$" + salt + "$" + hash,
		"$argon2id$v=19$m=65536,t=2,p=256$" + salt + "$" + hash,
		"$argon2id$v=19$m=7,t=2,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=4194304,t=2,p=1$" + salt + "$" + hash, // 4 GiB
		"$argon2id$v=19$m=65536,t=2,p=1$" + salt + "==$" + hash, // padded
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZQ$" + hash,         // 4-byte salt
		"$argon2id$v=19$m=65536,t=2,p=1$" + salt + "$" + hash[:10],
		"$argon2id$v=19$m=65536,t=2,p=1$" + salt + "$" + hash + "!",
		"$argon2id$v=19$m=65536,t=2,p=1$" + salt + "$" + hash + "$",
		"$argon2id$v=19$m=65536,t=2,p=1$" + salt + "$",
	} {
		ok, err := VerifyPassword(h, "password")
		if ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false, ErrMalformedHash", h, ok, err)
		}
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyPassword(b *testing.B) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := VerifyPassword(h, "correct horse battery staple"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkVerifyPasswordParallel shows the throughput of concurrent logins
// on this machine (-cpu to vary the cores).
func BenchmarkVerifyPasswordParallel(b *testing.B) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := VerifyPassword(h, "correct horse battery staple"); !ok || err != nil {
				b.Error(ok, err)
				return
			}
		}
	})
}
