package store

import (
	"context"
	"errors"
	"testing"
)

func TestLoginSecretsCarryHashAndSCRAMKeys(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a, err := s.CreateAccountWithCredentials(ctx, "Alice@Example.org", Credentials{PasswordHash: "h1", SCRAMSHA256: "k1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := s.LoginSecrets(ctx, " ALICE@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if want := (LoginSecrets{AccountID: a.ID, Address: "alice@example.org", Credentials: Credentials{"h1", "k1"}}); *ls != want {
		t.Fatalf("LoginSecrets = %+v, want %+v", *ls, want)
	}
	if _, err := s.LoginSecrets(ctx, "nobody@example.org"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("unknown account: %v", err)
	}

	if err := s.SetCredentials(ctx, "alice@example.org", Credentials{"h2", "k2"}); err != nil {
		t.Fatal(err)
	}
	if ls, _ := s.LoginSecrets(ctx, "alice@example.org"); ls.Credentials != (Credentials{"h2", "k2"}) {
		t.Fatalf("after SetCredentials: %+v", ls.Credentials)
	}
	// A hash set alone must not leave the old password's SCRAM keys valid.
	if err := s.SetPassword(ctx, "alice@example.org", "h3"); err != nil {
		t.Fatal(err)
	}
	if ls, _ := s.LoginSecrets(ctx, "alice@example.org"); ls.Credentials != (Credentials{"h3", ""}) {
		t.Fatalf("after SetPassword: %+v", ls.Credentials)
	}
	if err := s.SetCredentials(ctx, "nobody@example.org", Credentials{"h", "k"}); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("SetCredentials of nobody: %v", err)
	}
}

func TestAddSCRAMOnlyForTheSamePasswordAndOnlyOnce(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "bob@example.org", nil) // hash "hash", no keys
	if ok, err := s.AddSCRAM(ctx, a.ID, "stale", "k"); err != nil || ok {
		t.Fatalf("AddSCRAM with a changed hash: %v, %v", ok, err)
	}
	if ok, err := s.AddSCRAM(ctx, a.ID, "hash", "k1"); err != nil || !ok {
		t.Fatalf("AddSCRAM: %v, %v", ok, err)
	}
	if ok, _ := s.AddSCRAM(ctx, a.ID, "hash", "k2"); ok {
		t.Fatal("AddSCRAM replaced existing keys")
	}
	if ls, _ := s.LoginSecrets(ctx, "bob@example.org"); ls.SCRAMSHA256 != "k1" {
		t.Fatalf("keys %q", ls.SCRAMSHA256)
	}
}
