package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"loft/internal/auth"
	"loft/internal/config"
	"loft/internal/pop3"
	"loft/internal/smtp"
	"loft/internal/store"
)

// startLoftPOP3 runs Loft's own LMTP and POP3 servers in-process on a fresh store with
// accounts bench1..benchN@bench.test (password "pass") and returns their addresses.
func startLoftPOP3(t *testing.T, accounts int) (st *store.Store, lmtpAddr, pop3Addr string) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: t.TempDir(), DefaultQuota: store.Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword("pass")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= accounts; i++ {
		if _, err := st.CreateAccount(context.Background(), fmt.Sprintf("bench%d@bench.test", i), hash, nil); err != nil {
			t.Fatal(err)
		}
	}
	lmtp := smtp.New(st, smtp.Options{LMTP: true, Hostname: "localhost", Domains: []string{"bench.test"},
		MaxRecipients: 100, MaxLineLength: 64000})
	pop := pop3.New(pop3.Options{Store: st, Hostname: "localhost", Plaintext: config.PlaintextLoopback})
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go lmtp.Serve(ln1)
	go pop.Serve(ln2)
	t.Cleanup(func() {
		lmtp.Close()
		pop.Close()
		st.Close()
	})
	return st, ln1.Addr().String(), ln2.Addr().String()
}

func TestFillThenPOP3Run(t *testing.T) {
	st, lmtpAddr, pop3Addr := startLoftPOP3(t, 3)
	var mbox bytes.Buffer
	for i := range 12 {
		fmt.Fprintf(&mbox, "From sender@example.org Mon Jan  1 00:00:00 2024\nSubject: m%d\n\n", i)
		fmt.Fprintf(&mbox, "body %d\n.dot line\n%s\n\n", i, strings.Repeat("x", i*1000))
	}
	path := filepath.Join(t.TempDir(), "test.mbox")
	if err := os.WriteFile(path, mbox.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	code := fillCommand(context.Background(), []string{"--addr", lmtpAddr, "--mbox", path,
		"--rcpt", "bench2@bench.test,bench3@bench.test"}, &out, &errs)
	if code != 0 {
		t.Fatalf("fill: status %d: %s%s", code, out.String(), errs.String())
	}
	var want int64
	for _, addr := range []string{"bench2@bench.test", "bench3@bench.test"} {
		a, err := st.Account(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		if a.Messages != 12 {
			t.Fatalf("%s holds %d messages after fill, want 12", addr, a.Messages)
		}
		want += a.Usage
	}

	for _, pipeline := range []int{1, 5} {
		res, err := runPOP3(context.Background(), pop3Options{Addr: pop3Addr, Conns: 2,
			UserFormat: "bench%d@bench.test", First: 2, Password: "pass", Pipeline: pipeline, Timeout: 30e9})
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != 0 || res.Sessions != 2 || res.Messages != 24 || res.Bytes != want {
			t.Fatalf("pipeline %d: %+v; want 2 sessions, 24 messages, %d bytes", pipeline, res, want)
		}
	}

	// A wrong password is an error of the run, not a crash.
	res, err := runPOP3(context.Background(), pop3Options{Addr: pop3Addr, Conns: 1,
		UserFormat: "bench%d@bench.test", First: 1, Password: "wrong", Pipeline: 1, Timeout: 30e9})
	if err != nil || res.Errors != 1 || res.Sessions != 0 {
		t.Fatalf("wrong password: %+v, %v", res, err)
	}
}

func TestPOP3RefusesNonLoopback(t *testing.T) {
	var out, errs bytes.Buffer
	if code := pop3Command(context.Background(), []string{"--addr", "192.0.2.1:110"}, &out, &errs); code != 2 ||
		!strings.Contains(errs.String(), "loopback") {
		t.Fatalf("status %d: %s", code, errs.String())
	}
	if code := fillCommand(context.Background(), []string{"--addr", "example.org:24", "--mbox", "x", "--rcpt", "a@b"}, &out, &errs); code != 2 {
		t.Fatalf("fill to a remote host: status %d", code)
	}
	if _, err := runPOP3(context.Background(), pop3Options{Addr: "127.0.0.1:1", Conns: 2, UserFormat: "bench",
		Pipeline: 1, Timeout: 1e9}); err == nil || !strings.Contains(err.Error(), "bad login name") {
		t.Fatalf("user format without %%d: %v", err)
	}
}
