package auth

import (
	"errors"
	"testing"
)

func TestPlainExchange(t *testing.T) {
	for _, tc := range []struct {
		name      string
		responses [][]byte
		wantUser  string
		wantErr   error
	}{
		{"initial response", [][]byte{[]byte("\x00alice\x00pw d")}, "alice", nil},
		{"after empty challenge", [][]byte{nil, []byte("\x00alice\x00pw")}, "alice", nil},
		{"authzid is the user", [][]byte{[]byte("Alice\x00alice\x00pw")}, "alice", nil},
		{"authzid is another", [][]byte{[]byte("bob\x00alice\x00pw")}, "", ErrAuthzID},
		{"two parts", [][]byte{[]byte("alice\x00pw")}, "", ErrMalformedResponse},
		{"no user", [][]byte{[]byte("\x00\x00pw")}, "", ErrMalformedResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := NewPasswordExchange("plain")
			if err != nil {
				t.Fatal(err)
			}
			var creds *Credentials
			for i, r := range tc.responses {
				var ch []byte
				ch, creds, err = ex.Next(r)
				if i < len(tc.responses)-1 && (err != nil || creds != nil || len(ch) != 0) {
					t.Fatalf("step %d: challenge %q, creds %v, err %v", i, ch, creds, err)
				}
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (creds == nil || creds.Username != tc.wantUser) {
				t.Fatalf("creds %+v, want user %q", creds, tc.wantUser)
			}
		})
	}
}

func TestLoginExchange(t *testing.T) {
	ex, _ := NewPasswordExchange("LOGIN")
	ch, creds, err := ex.Next(nil)
	if string(ch) != "Username:" || creds != nil || err != nil {
		t.Fatalf("first step: %q %v %v", ch, creds, err)
	}
	ch, _, _ = ex.Next([]byte("alice"))
	if string(ch) != "Password:" {
		t.Fatalf("second challenge %q", ch)
	}
	_, creds, err = ex.Next([]byte("secret pw"))
	if err != nil || creds == nil || *creds != (Credentials{"alice", "secret pw"}) {
		t.Fatalf("credentials %+v, %v", creds, err)
	}

	// The user name as initial response skips the first challenge.
	ex, _ = NewPasswordExchange("login")
	if ch, _, _ := ex.Next([]byte("alice")); string(ch) != "Password:" {
		t.Fatalf("with initial response: challenge %q", ch)
	}
	ex, _ = NewPasswordExchange("login")
	if _, _, err := ex.Next([]byte{}); !errors.Is(err, ErrMalformedResponse) {
		t.Fatalf("empty user name: %v", err)
	}
}

func TestUnsupportedMechanism(t *testing.T) {
	if _, err := NewPasswordExchange("CRAM-MD5"); !errors.Is(err, ErrUnsupportedMechanism) {
		t.Fatalf("err %v", err)
	}
}
