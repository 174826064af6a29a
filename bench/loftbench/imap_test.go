package main

// Tests of the IMAP client and the three IMAP loads: the response reader and APPEND's two
// literal forms against scripted servers, then each load against Loft's own IMAP server run
// in-process on a temp store, checking the counts a run reports and the mailbox it leaves.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"loft/internal/auth"
	"loft/internal/imap"
	"loft/internal/store"
)

// readerConn returns a client that reads the scripted server output s.
func readerConn(s string, bufSize int, keep bool) *imapConn {
	return &imapConn{r: bufio.NewReaderSize(strings.NewReader(s), bufSize), keep: keep}
}

func TestIMAPReadResponsesWithLiterals(t *testing.T) {
	body := strings.Repeat("0123456789", 10) + "\r\n"
	script := "* 1 FETCH (UID 7 BODY[] {102}\r\n" + body + " FLAGS (\\Seen))\r\n" +
		"* 2 FETCH (BODY[1] {3}\r\nabc BINARY[2] ~{2}\r\nxy)\r\n" +
		"* OK " + strings.Repeat("x", 100) + "\r\n" +
		"* 3 FETCH (BODY[] {0}\r\n)\r\n" +
		"a1 OK done\r\n"
	for _, keep := range []bool{false, true} {
		c := readerConn(script, 16, keep) // a buffer smaller than the lines and literals
		want := []struct {
			text     string
			lits     []string
			litBytes int64
		}{
			{"* 1 FETCH (UID 7 BODY[] {102} FLAGS (\\Seen))", []string{body}, 102},
			{"* 2 FETCH (BODY[1] {3} BINARY[2] ~{2})", []string{"abc", "xy"}, 5},
			{"* OK " + strings.Repeat("x", 100), nil, 0},
			{"* 3 FETCH (BODY[] {0})", []string{""}, 0},
			{"a1 OK done", nil, 0},
		}
		for i, w := range want {
			r, err := c.read()
			if err != nil {
				t.Fatalf("keep=%v: response %d: %v", keep, i, err)
			}
			// The text goes on after "{N}" with what follows the literal's data.
			if string(r.text) != w.text || r.litBytes != w.litBytes {
				t.Errorf("keep=%v: response %d: got %q (%d literal bytes), want %q (%d)", keep, i, r.text, r.litBytes, w.text, w.litBytes)
			}
			if keep && fmt.Sprintf("%q", r.lits) != fmt.Sprintf("%q", w.lits) {
				t.Errorf("response %d: literals %q, want %q", i, r.lits, w.lits)
			}
		}
		if _, err := c.read(); err != io.EOF {
			t.Errorf("keep=%v: after the last response: %v, want EOF", keep, err)
		}
	}
}

func TestIMAPReadTruncatedLiteralIsAnError(t *testing.T) {
	c := readerConn("* 1 FETCH (BODY[] {10}\r\nabc", 4096, false)
	if _, err := c.read(); err == nil {
		t.Fatal("a literal cut short was read without an error")
	}
}

func TestIMAPParseHelpers(t *testing.T) {
	for _, tc := range []struct {
		text, name string
		n          int
		ok         bool
	}{
		{"* 300 EXISTS", "EXISTS", 300, true},
		{"* 5 FETCH (FLAGS ())", "FETCH", 5, true},
		{"* 5 fetch (FLAGS ())", "FETCH", 5, true},
		{"* 5 FETCHED", "FETCH", 0, false},
		{"* OK [UIDNEXT 4] x", "EXISTS", 0, false},
		{"a1 5 EXISTS", "EXISTS", 0, false},
	} {
		n, ok := untaggedNumber([]byte(tc.text), tc.name)
		if n != tc.n || ok != tc.ok {
			t.Errorf("untaggedNumber(%q, %s) = %d, %v; want %d, %v", tc.text, tc.name, n, ok, tc.n, tc.ok)
		}
	}
	if v, ok := respCode("[APPENDUID 1700000000 42] APPEND completed", "APPENDUID"); !ok || v != "1700000000 42" {
		t.Errorf("respCode APPENDUID = %q, %v", v, ok)
	}
	if got := quote(`a"b\c`); got != `"a\"b\\c"` {
		t.Errorf("quote = %s", got)
	}
	c := &imapConn{}
	c.noteCaps([]byte("* OK [CAPABILITY IMAP4rev1 literal+ IDLE] ready"))
	if !c.hasCap("LITERAL+") || c.hasCap("LITERAL") {
		t.Errorf("caps %q: LITERAL+ should be there, LITERAL not", c.caps)
	}
}

// scriptedServer accepts one connection on 127.0.0.1 and runs serve on it.
func scriptedServer(t *testing.T, serve func(r *bufio.Reader, w io.Writer)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		serve(bufio.NewReader(conn), conn)
	}()
	return l.Addr().String()
}

// TestIMAPAppendLiteralForms checks that APPEND waits for "+" before a synchronizing literal
// and sends a LITERAL+ one at once, and that a refused literal is a NO, not a hang.
func TestIMAPAppendLiteralForms(t *testing.T) {
	msg := []byte("Subject: x\r\n\r\nhello\r\n")
	for _, tc := range []struct {
		caps   string
		refuse bool
	}{{"IMAP4rev1", false}, {"IMAP4rev1 LITERAL+", false}, {"IMAP4rev1", true}} {
		errc := make(chan error, 1)
		addr := scriptedServer(t, func(r *bufio.Reader, w io.Writer) {
			errc <- func() error {
				fmt.Fprintf(w, "* OK [CAPABILITY %s] hi\r\n", tc.caps)
				line, _ := r.ReadString('\n')
				plus := strings.Contains(tc.caps, "LITERAL+")
				want := fmt.Sprintf("a1 APPEND \"INBOX\" (\\Seen) {%d}\r\n", len(msg))
				if plus {
					want = strings.Replace(want, "}", "+}", 1)
				}
				if line != want {
					return fmt.Errorf("got %q, want %q", line, want)
				}
				if tc.refuse {
					io.WriteString(w, "a1 NO [TOOBIG] no thanks\r\n")
					return nil
				}
				if !plus {
					io.WriteString(w, "+ go ahead\r\n")
				}
				data := make([]byte, len(msg)+2)
				if _, err := io.ReadFull(r, data); err != nil || string(data) != string(msg)+"\r\n" {
					return fmt.Errorf("literal %q, %v", data, err)
				}
				io.WriteString(w, "* 3 EXISTS\r\na1 OK [APPENDUID 9 3] done\r\n")
				return nil
			}()
		})
		c, err := dialIMAP(context.Background(), addr, 5*time.Second, 4096)
		if err != nil {
			t.Fatal(err)
		}
		text, err := c.appendMessage("INBOX", `\Seen`, msg)
		c.close()
		if serr := <-errc; serr != nil {
			t.Fatalf("caps %q: server: %v", tc.caps, serr)
		}
		if tc.refuse {
			if ie, ok := err.(*imapError); !ok || ie.Status != "NO" {
				t.Errorf("refused literal: got %v, want a NO", err)
			}
			continue
		}
		if err != nil || !strings.HasPrefix(text, "[APPENDUID 9 3]") {
			t.Errorf("caps %q: APPEND = %q, %v", tc.caps, text, err)
		}
	}
}

const (
	testDomain   = "bench.test"
	testPassword = "pass"
)

var (
	hashOnce sync.Once
	testHash string
)

// loftServer starts Loft's IMAP server on a temp store with accounts bench1..benchN, each
// holding msgs messages in INBOX, and returns its address and store.
func loftServer(t *testing.T, accounts, msgs int) (string, *store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), DefaultQuota: store.Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	hashOnce.Do(func() { testHash, err = auth.HashPassword(testPassword) })
	if err != nil {
		t.Fatal(err)
	}
	var rcpts []string
	for i := 1; i <= accounts; i++ {
		addr := fmt.Sprintf("bench%d@%s", i, testDomain)
		if _, err := st.CreateAccount(ctx, addr, testHash, nil); err != nil {
			t.Fatal(err)
		}
		rcpts = append(rcpts, addr)
	}
	var wg sync.WaitGroup
	for i := range msgs {
		wg.Go(func() {
			res, err := st.Deliver(ctx, strings.NewReader(testMessage(i)), store.DeliverOptions{Recipients: rcpts})
			if err == nil {
				for _, r := range res {
					err = r.Err
				}
			}
			if err != nil {
				t.Errorf("deliver: %v", err)
			}
		})
	}
	wg.Wait()
	srv := imap.New(st, imap.Options{Hostname: "test"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		st.Close()
	})
	return l.Addr().String(), st
}

// testMessage is message i of the test mailboxes: plain or multipart, so that
// BODYSTRUCTURE has something to say.
func testMessage(i int) string {
	h := fmt.Sprintf("From: a%d@example.org\r\nTo: b@example.org\r\nSubject: test %d\r\nDate: Sun, 22 Nov 2026 10:00:%02d +0000\r\nMessage-ID: <%d@test>\r\n", i, i, i%60, i)
	if i%2 == 0 {
		return h + "\r\n" + strings.Repeat(fmt.Sprintf("line %d\r\n", i), 10*i+1)
	}
	return h + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/octet-stream\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n"
}

// selectExists logs in and returns SELECT INBOX's EXISTS.
func selectExists(t *testing.T, addr, user string) int {
	t.Helper()
	c, err := dialIMAP(context.Background(), addr, 5*time.Second, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.login(user, testPassword); err != nil {
		t.Fatal(err)
	}
	exists := -1
	if _, err := c.command("SELECT INBOX", func(r *imapResponse) {
		if n, ok := untaggedNumber(r.text, "EXISTS"); ok {
			exists = n
		}
	}); err != nil {
		t.Fatal(err)
	}
	return exists
}

func TestIMAPMixedProfileAgainstLoft(t *testing.T) {
	addr, _ := loftServer(t, 2, 6)
	o := imapOptions{
		Addr:          addr,
		Clients:       2,
		Accounts:      accountSet{UserFormat: "bench%d", Domain: testDomain, First: 1, Accounts: 2, Password: testPassword},
		Duration:      30 * time.Second,
		Loops:         2,
		LoopsPerLogin: 1,
		FetchRange:    5,
		Timeout:       5 * time.Second,
	}
	res, err := runIMAP(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 {
		t.Fatalf("%d errors: %v", res.Errors, res.FirstErrors)
	}
	// Per client: the first session has no message of its own to delete (8 commands), the
	// second has (10).
	if res.Commands != 2*(8+10) || res.Sessions != 4 {
		t.Errorf("%d commands in %d sessions, want 36 in 4", res.Commands, res.Sessions)
	}
	for _, op := range res.Ops {
		want := 4
		switch op.Name {
		case "STORE deleted", "EXPUNGE":
			want = 2
		}
		if op.Count != want {
			t.Errorf("%s: %d, want %d", op.Name, op.Count, want)
		}
	}
	if res.FetchedBytes == 0 || res.AppendedBytes != 4*int64(len(generatedMessage())) {
		t.Errorf("fetched %d bytes, appended %d", res.FetchedBytes, res.AppendedBytes)
	}
	// Each session expunged what the previous one appended: only the last APPEND stays.
	for _, u := range []string{"bench1@" + testDomain, "bench2@" + testDomain} {
		if n := selectExists(t, addr, u); n != 7 {
			t.Errorf("%s: %d messages after the run, want 7", u, n)
		}
	}
}

func TestIMAPBigAgainstLoft(t *testing.T) {
	addr, _ := loftServer(t, 1, 25)
	res, err := runIMAPBig(context.Background(), imapBigOptions{
		Addr: addr, User: "bench1@" + testDomain, Password: testPassword, Mailbox: "INBOX",
		Rounds: 2, Warmup: true, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Exists != 25 || len(res.Steps) != 3 {
		t.Fatalf("errors %d %v, exists %d, %d steps", res.Errors, res.FirstErrors, res.Exists, len(res.Steps))
	}
	var total int64
	for i := range 25 {
		total += int64(len(testMessage(i)))
	}
	for i, s := range res.Steps {
		if len(s.Seconds) != 2 || s.Best <= 0 || s.Best > s.Median {
			t.Errorf("%s: rounds %v, best %v, median %v", s.Command, s.Seconds, s.Best, s.Median)
		}
		if i > 0 && s.Responses != 25 {
			t.Errorf("%s: %d responses, want 25", s.Command, s.Responses)
		}
	}
	// Loft adds no header at store-level delivery, so the bodies are the messages' bytes.
	if b := res.Steps[2].Bytes; b != total {
		t.Errorf("BODY.PEEK[] of all: %d bytes, want %d", b, total)
	}
}

func TestIMAPIdleAgainstLoft(t *testing.T) {
	addr, _ := loftServer(t, 2, 1)
	res, err := runIMAPIdle(context.Background(), imapIdleOptions{
		Addr:     addr,
		Sessions: 4,
		Accounts: accountSet{UserFormat: "bench%d", Domain: testDomain, First: 1, Accounts: 2, Password: testPassword},
		PID:      os.Getpid(), // the server runs in this process
		Parallel: 2,
		Timeout:  5 * time.Second,
		// Both accounts logged in once before the first sample.
		WarmLogins: true,

		sampleEvery: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Sessions != 4 || res.HalfSessions != 2 || res.Processes != 1 || res.PSSKB <= 0 || res.HalfPSSKB <= 0 || res.KBPerSession <= 0 {
		t.Fatalf("%+v", res)
	}
	if !res.WarmLogins || res.AnonBeforeKB <= 0 || res.AnonKB <= 0 || res.HalfAnonKB <= 0 || res.AnonKB > res.PSSKB {
		t.Fatalf("anonymous figures: %+v", res)
	}
}

func TestServerPSSSumsProcessesByName(t *testing.T) {
	child := exec.Command("sleep", "10")
	if err := child.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	var kb memUse
	var procs int
	var err error
	for range 100 { // until the child has exec'd sleep
		if kb, procs, err = serverPSS(os.Getpid(), "sleep"); err == nil && procs == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil || procs != 1 || kb.PSS <= 0 || kb.Anon <= 0 || kb.Anon > kb.PSS {
		t.Fatalf("serverPSS(self, sleep) = %+v KB over %d processes, %v; want the child's PSS and its anonymous part", kb, procs, err)
	}
	if cpu, err := treeCPU(os.Getpid()); err != nil || cpu < 0 {
		t.Errorf("treeCPU = %v, %v", cpu, err)
	}
	if b, total, err := hostCPU(); err != nil || b <= 0 || total < b {
		t.Errorf("hostCPU = %d, %d, %v", b, total, err)
	}
}

func TestIMAPSyncAgainstLoft(t *testing.T) {
	addr, _ := loftServer(t, 1, 30)
	user := "bench1@" + testDomain
	res, err := runIMAPSync(context.Background(), syncOptions{
		Addr: addr, User: user, StdUser: user, Password: testPassword,
		Parts: syncParts, Rounds: 2, Expect: 30, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 {
		t.Fatalf("%d errors: %v", res.Errors, res.FirstErrors)
	}
	want := 2 + len(bigSearches) + len(stdSearches) + 2
	if len(res.Steps) != want {
		t.Fatalf("%d steps, want %d", len(res.Steps), want)
	}
	quiet, changed := res.Steps[0], res.Steps[1]
	if quiet.Responses != 0 || changed.Responses != resyncFlagChanges+resyncNew || changed.Exists != 32 {
		t.Errorf("resync: %d FETCH without change, %d with (want %d) in %d messages (want 32)",
			quiet.Responses, changed.Responses, resyncFlagChanges+resyncNew, changed.Exists)
	}
	if len(changed.Seconds) != 2 || changed.WireBytes <= quiet.WireBytes {
		t.Errorf("resync: rounds %v, %d bytes with changes, %d without", changed.Seconds, changed.WireBytes, quiet.WireBytes)
	}
	for _, s := range res.Steps[2 : want-2] {
		if strings.Contains(s.Command, "SORT") && s.Results != 30 {
			t.Errorf("%s: %d results, want 30", s.Command, s.Results)
		}
	}
	plain, deflated := res.Steps[want-2], res.Steps[want-1]
	if plain.Responses != 30 || deflated.Responses != 30 || plain.WireBytes != plain.PlainBytes {
		t.Errorf("compress: %d and %d FETCH, plain session %d/%d bytes", plain.Responses, deflated.Responses, plain.WireBytes, plain.PlainBytes)
	}
	// The same responses but for the tag, compressed on the wire.
	if d := deflated.PlainBytes - plain.PlainBytes; d < -5 || d > 5 || deflated.WireBytes >= plain.WireBytes/2 {
		t.Errorf("compress: %d bytes inflated (plain session %d), %d on the wire", deflated.PlainBytes, plain.PlainBytes, deflated.WireBytes)
	}
	// The run leaves the mailbox as it found it.
	if n := selectExists(t, addr, user); n != 30 {
		t.Errorf("%d messages after the run, want 30", n)
	}
}
