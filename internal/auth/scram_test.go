package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestSCRAMRFC7677Vector replays RFC 7677 §3's example exchange.
func TestSCRAMRFC7677Vector(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	keys, err := deriveSCRAM("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var s scramServer
	user, err := s.readClientFirst("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
	if err != nil || user != "user" {
		t.Fatalf("client-first: %q, %v", user, err)
	}
	first := s.serverFirstMessage(keys, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; first != want {
		t.Fatalf("server-first\n got %s\nwant %s", first, want)
	}
	final, ok, err := s.checkClientFinal("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	if err != nil || !ok {
		t.Fatalf("client-final: ok %v, %v", ok, err)
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; final != want {
		t.Fatalf("server-final %s, want %s", final, want)
	}
}

func TestSCRAMStoredFormatRoundTrip(t *testing.T) {
	s, err := HashSCRAM("secret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "SCRAM-SHA-256$16384:") {
		t.Fatalf("HashSCRAM = %q", s)
	}
	k, err := parseSCRAM(s)
	if err != nil {
		t.Fatal(err)
	}
	if k.String() != s {
		t.Fatalf("round trip: %q, want %q", k.String(), s)
	}
	again, _ := HashSCRAM("secret")
	if again == s {
		t.Error("two SCRAM hashes of one password are equal: salt not random")
	}
	for _, bad := range []string{
		"", "SCRAM-SHA-256$", "SCRAM-SHA-1$4096:c2FsdHNhbHQ=$AAAA:AAAA",
		"SCRAM-SHA-256$100:c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("A", 43) + "=",
		"SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$AAAA:AAAA",
		"SCRAM-SHA-256$4096:!!$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("A", 43) + "=",
	} {
		if _, err := parseSCRAM(bad); !errors.Is(err, ErrMalformedSCRAM) {
			t.Errorf("parseSCRAM(%q) = %v", bad, err)
		}
	}
}

func TestSCRAMClientFirstMalformed(t *testing.T) {
	for _, msg := range []string{
		"", "n", "n,", "x,,n=user,r=abc", "p=tls-unique,,n=user,r=abc",
		"n,,r=abc", "n,,n=user", "n,,n=user,r=", "n,,n=us=2Xer,r=abc", "n,,m=ext,n=user,r=abc",
		"n,,n=,r=abc", "n,b=x,n=user,r=abc",
	} {
		var s scramServer
		if _, err := s.readClientFirst(msg); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("readClientFirst(%q) = %v, want ErrMalformedResponse", msg, err)
		}
	}
	var s scramServer
	if _, err := s.readClientFirst("n,a=bob@x,n=alice@x,r=abc"); !errors.Is(err, ErrAuthzID) {
		t.Errorf("authzid of another user: %v", err)
	}
	if u, err := s.readClientFirst("n,a=Alice@x,n=alice=2Cx=3D@x,r=abc"); err == nil || u != "" {
		// a= differs from the unescaped name "alice,x=@x"
		t.Errorf("escaped name: %q, %v", u, err)
	}
	if u, err := (&scramServer{}).readClientFirst("y,,n=a=2Cb=3Dc,r=abc"); err != nil || u != "a,b=c" {
		t.Errorf("escaped name: %q, %v", u, err)
	}
}

func FuzzSCRAMServer(f *testing.F) {
	f.Add("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	f.Add("y,a=user,n=user,r=x", "c=eSxhPXVzZXIs,r=x%hv,p=AAAA")
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	keys, _ := deriveSCRAM("pencil", salt, 4096)
	f.Fuzz(func(t *testing.T, first, final string) {
		var s scramServer
		if _, err := s.readClientFirst(first); err != nil {
			return
		}
		s.serverFirstMessage(keys, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
		s.checkClientFinal(final)
	})
}
