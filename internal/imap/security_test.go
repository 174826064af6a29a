package imap

// Tests of issue 6's IMAP side: logins through the shared Authenticator
// (its cache, SCRAM-SHA-256, blocking, the per-account session limit),
// the command timeout, the line and literal limits, and mailbox names
// that try to reach another account.

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"loft/internal/auth"
	"loft/internal/auth/authtest"
	"loft/internal/store"
	"loft/internal/store/storetest"
)

// TestLoginUsesAuthCache: a client that reconnects and logs in again is
// served from the login cache; argon2id runs once.
func TestLoginUsesAuthCache(t *testing.T) {
	ts := newTestServer(t)
	before := ts.srv.opts.Auth.Hashes()
	for range 3 {
		c := ts.login(false)
		c.cmd("z LOGOUT", "* BYE Logging out", "z OK LOGOUT completed")
	}
	c := ts.dial()
	c.cmd("a AUTHENTICATE PLAIN "+b64("\x00"+testUser+"\x00"+testPass), "re:^a OK \\[CAPABILITY .*\\] Logged in$")
	if n := ts.srv.opts.Auth.Hashes() - before; n != 1 {
		t.Errorf("4 logins computed %d password hashes, want 1", n)
	}
}

// TestUnknownUserCostsAHashToo: an unknown account and a wrong password
// get the same words and each spend one password hash, so that the time
// of the answer does not tell which accounts exist.
func TestUnknownUserCostsAHashToo(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	for _, user := range []string{testUser, "nobody@example.org"} {
		before := ts.srv.opts.Auth.Hashes()
		c.cmd("a LOGIN "+user+" wrong", "a NO [AUTHENTICATIONFAILED] Authentication failed")
		if n := ts.srv.opts.Auth.Hashes() - before; n != 1 {
			t.Errorf("LOGIN %s with a wrong password computed %d hashes, want 1", user, n)
		}
	}
}

// TestAuthenticateSCRAM runs RFC 7677's exchange over IMAP: the
// server-final message is a continuation, answered by an empty line,
// before the tagged OK (RFC 9051 §6.2.2).
func TestAuthenticateSCRAM(t *testing.T) {
	ts := newTestServer(t)
	ts.login(false) // stores the account's SCRAM keys from its password
	for _, ir := range []bool{false, true} {
		sc := authtest.NewSCRAMClient(testUser, testPass, "")
		c := ts.dial()
		if ir {
			c.send("a AUTHENTICATE SCRAM-SHA-256 " + b64(sc.First()))
		} else {
			c.cmd("a AUTHENTICATE SCRAM-SHA-256", "+ ")
			c.send(b64(sc.First()))
		}
		serverFirst := continuationData(t, c.line())
		final, err := sc.Final(serverFirst)
		if err != nil {
			t.Fatal(err)
		}
		c.send(b64(final))
		if err := sc.Verify(continuationData(t, c.line())); err != nil {
			t.Fatal(err)
		}
		c.cmd("", "re:^a OK \\[CAPABILITY .*\\] Logged in$")
		if l := c.run("b SELECT INBOX"); !strings.HasPrefix(l[len(l)-1], "b OK [READ-WRITE]") {
			t.Errorf("SELECT after SCRAM: %q", l)
		}
	}

	// A wrong password fails at the client's proof, in the same words as
	// a LOGIN with a wrong password.
	sc := authtest.NewSCRAMClient(testUser, "wrong", "")
	c := ts.dial()
	c.send("a AUTHENTICATE SCRAM-SHA-256 " + b64(sc.First()))
	final, err := sc.Final(continuationData(t, c.line()))
	if err != nil {
		t.Fatal(err)
	}
	c.cmd(b64(final), "a NO [AUTHENTICATIONFAILED] Authentication failed")
}

func continuationData(t *testing.T, line string) string {
	t.Helper()
	data, ok := strings.CutPrefix(line, "+ ")
	if !ok {
		t.Fatalf("want a continuation, got %q", line)
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatalf("continuation %q: %v", line, err)
	}
	return string(b)
}

// TestBlockedAddressRefused: after the throttle's threshold an address
// gets NO [UNAVAILABLE] even with the right password, and is disconnected.
func TestBlockedAddressRefused(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Throttle = auth.NewThrottle(auth.ThrottleOptions{
			FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond, BlockAfter: 2, BlockFor: time.Minute})
	})
	c := ts.dial()
	c.cmd("a LOGIN "+testUser+" wrong", "a NO [AUTHENTICATIONFAILED] Authentication failed")
	c.cmd("b LOGIN "+testUser+" wrong", "b NO [AUTHENTICATIONFAILED] Authentication failed")
	c = ts.dial()
	c.cmd("c LOGIN "+testUser+` "`+testPass+`"`, "c NO [UNAVAILABLE] Too many failed logins from your address; try again later")
	if l, err := c.readResponse(2 * time.Second); err != io.EOF {
		t.Fatalf("connection still open: %q %v", l, err)
	}
}

// TestSessionsPerAccountLimit: one session over the per-account,
// per-address limit is NO [LIMIT]; ending one makes room.
func TestSessionsPerAccountLimit(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxSessionsPerAccountIP = 2 })
	a := ts.login(false)
	ts.login(false)
	c := ts.dial()
	login := "x LOGIN " + testUser + ` "` + testPass + `"`
	c.cmd(login, "x NO [LIMIT] Too many sessions of this account from your address")
	a.cmd("z LOGOUT", "* BYE Logging out", "z OK LOGOUT completed")
	a.readResponse(time.Second) // EOF: the session has ended
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.send(login)
		l := c.line()
		if strings.HasPrefix(l, "x OK ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room after a logout: %q", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// UNAUTHENTICATE gives the session's place back too.
	c.cmd("u UNAUTHENTICATE", "u OK UNAUTHENTICATE completed")
	d := ts.dial()
	d.cmd(strings.Replace(login, "x ", "y ", 1), "re:^y OK ")
}

// TestCommandTimeout: a client that starts a command and trickles the
// rest is dropped once the command timeout has passed since its first
// byte, though it never waits the idle timeout between bytes; so is one
// that announces a literal and stops sending its data.
func TestCommandTimeout(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.CommandTimeout = 300 * time.Millisecond })
	c := ts.login(false)
	start := time.Now()
	for _, b := range "a NOO" { // the last bytes come after the timeout
		c.conn.Write([]byte{byte(b)})
		time.Sleep(100 * time.Millisecond)
	}
	c.expect("* BYE Command timed out")
	if l, err := c.readResponse(2 * time.Second); err != io.EOF {
		t.Fatalf("connection still open: %q %v", l, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dropped after %v", d)
	}

	c = ts.login(false)
	c.sendRaw("a APPEND INBOX {1000+}\r\nSubject: x\r\n")
	if l, err := c.readResponse(3 * time.Second); err != io.EOF {
		t.Fatalf("stalled literal: connection still open: %q %v", l, err)
	}

	// A client that answers promptly is not affected.
	c = ts.login(false)
	time.Sleep(400 * time.Millisecond) // idle between commands is fine
	c.cmd("b NOOP", "b OK NOOP completed")
}

// TestOverlongLineLiteralSkipped: the literal announced at the end of an
// overlong line is skipped as data; its content never runs as a command.
func TestOverlongLineLiteralSkipped(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	inject := "x DELETE Sent\r\n"
	c.sendRaw("a RENAME " + strings.Repeat("x", DefaultMaxLineLength) + fmt.Sprintf(" {%d+}\r\n", len(inject)) + inject + "\r\n")
	c.expect("* BAD command line too long (limit 65536 bytes)")
	c.cmd("b LIST \"\" Sent", `* LIST (\HasNoChildren \Sent) "/" "Sent"`, "b OK LIST completed")
}

// TestHugeLineAndLiteralSizes: a 10 MB command line and 20-digit literal
// sizes get answers; the server keeps serving others throughout.
func TestHugeLineAndLiteralSizes(t *testing.T) {
	ts := newTestServer(t)
	other := ts.login(false)

	c := ts.login(false)
	go func() {
		// The server stops reading after 1 MiB; the write then fails.
		c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c.conn, "a NOOP "+strings.Repeat("y", 10<<20)+"\r\n")
	}()
	c.expect("* BYE Command line too long")
	other.cmd("b NOOP", "b OK NOOP completed")

	c = ts.dial()
	c.cmd("c LOGIN {99999999999999999999}", "c BAD [TOOBIG] literal too large (limit 1048576 bytes)")
	c = ts.login(false)
	c.cmd("d APPEND INBOX {99999999999999999999}", "re:^d NO \\[TOOBIG\\] ")
	c.cmd("e SELECT {18446744073709551616}", "e BAD [TOOBIG] literal too large (limit 1048576 bytes)")
	c.cmd("f NOOP", "f OK NOOP completed")
	// A non-synchronizing one's data cannot be skipped: answer, then end.
	c.cmd("g SELECT {99999999999999999999+}", "g BAD [TOOBIG] literal too large (limit 1048576 bytes)", "* BYE Literal size out of range")
	other.cmd("h NOOP", "h OK NOOP completed")
}

// TestInvalidUTF8Names: names that are not UTF-8 (rev2, UTF8=ACCEPT) or
// not valid modified UTF-7 (rev1) are refused, without harm.
func TestInvalidUTF8Names(t *testing.T) {
	ts := newTestServer(t)
	for _, rev2 := range []bool{false, true} {
		c := ts.login(rev2)
		names := []string{"\xff\xfe", "bad\xc0\xafname", "a\x00b", "x\xe9y"}
		if !rev2 {
			// Not modified UTF-7: unterminated, UTF-16 surrogate halves,
			// a dot pair in disguise, a stray 8-bit byte.
			names = append(names, "&Jjo", "&2D0-", "&AC4ALg-", "&-&ZeVnLIqe-\xe9")
		}
		for i, name := range names {
			lit := fmt.Sprintf("{%d+}\r\n%s", len(name), name)
			for _, line := range []string{"CREATE " + lit, "SELECT " + lit, "DELETE " + lit, "SUBSCRIBE " + lit, "RENAME Drafts " + lit} {
				tag := fmt.Sprintf("t%d", i)
				l := c.run(tag + " " + line)
				if last := l[len(l)-1]; !strings.HasPrefix(last, tag+" NO ") && !strings.HasPrefix(last, tag+" BAD ") {
					t.Errorf("rev2=%v %q: %q", rev2, line, l)
				}
			}
		}
		c.cmd("z NOOP", "z OK NOOP completed")
	}
	mbs, err := ts.st.Mailboxes(context.Background(), ts.acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range mbs {
		if !utf8.ValidString(mb.Name) || strings.ContainsRune(mb.Name, 0) {
			t.Errorf("mailbox %q was created", mb.Name)
		}
	}
}

// TestNameTricksStayInAccount: whatever name alice uses in LIST, SELECT,
// EXAMINE, STATUS, CREATE, RENAME, APPEND, COPY and MOVE, she sees and
// changes only her own mail; bob's is neither listed, read nor changed.
func TestNameTricksStayInAccount(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	bob, err := ts.st.CreateAccount(ctx, "bob@example.org", testHash, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := "Subject: for bob only\r\n\r\nBOBSECRET\r\n"
	if res, err := ts.st.Deliver(ctx, strings.NewReader(secret), store.DeliverOptions{Recipients: []string{"bob@example.org"}}); err != nil || res[0].Err != nil {
		t.Fatalf("deliver: %v %v", err, res)
	}
	ts.deliver(sampleMsg)
	bobBefore := mailboxSummary(t, ts.st, bob.ID)

	for _, rev2 := range []bool{false, true} {
		c := ts.login(rev2)
		for i, name := range storetest.NameTricks {
			lit := fmt.Sprintf("{%d+}\r\n%s", len(name), name)
			for j, line := range []string{
				`LIST "" ` + lit,
				`LIST ` + lit + ` "*"`,
				"STATUS " + lit + " (MESSAGES)",
				"EXAMINE " + lit,
				"SELECT " + lit,
				"CREATE " + lit,
				"APPEND " + lit + " {5+}\r\nx: y\r\n",
				"SELECT INBOX",
				"COPY 1 " + lit,
				"MOVE 1 " + lit,
				"RENAME " + lit + " Stolen",
				"SELECT " + lit,
				"FETCH 1:* BODY.PEEK[]",
				"DELETE " + lit,
			} {
				tag := fmt.Sprintf("t%d_%d", i, j)
				for _, l := range c.run(tag + " " + line) {
					if strings.Contains(l, "BOBSECRET") || strings.Contains(l, "for bob only") {
						t.Fatalf("rev2=%v %q: %s reached bob's mail: %q", rev2, name, line, l)
					}
				}
			}
		}
		c.cmd("z LOGOUT", "* BYE Logging out", "z OK LOGOUT completed")
	}
	if after := mailboxSummary(t, ts.st, bob.ID); after != bobBefore {
		t.Errorf("bob's mailboxes changed:\nbefore %s\nafter  %s", bobBefore, after)
	}
}

// mailboxSummary describes an account's mailboxes and their messages.
func mailboxSummary(t *testing.T, st *store.Store, accountID int64) string {
	t.Helper()
	ctx := context.Background()
	mbs, err := st.Mailboxes(ctx, accountID)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mb := range mbs {
		infos, err := st.Messages(ctx, accountID, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%d:%d ", mb.Name, mb.UIDValidity, len(infos))
	}
	return b.String()
}

// FuzzMUTF7 checks modified UTF-7 (RFC 3501 §5.1.3): decoding never
// panics and yields valid UTF-8 or an error, and every UTF-8 name
// survives encoding and decoding unchanged.
func FuzzMUTF7(f *testing.F) {
	for _, s := range storetest.NameTricks {
		f.Add(s)
	}
	for _, s := range []string{"&Jjo-", "&Jjo", "&-", "&AGEAYgBj-", "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "&2D3cAA-", "&AC4ALg-", "&&-", "Entw&APw-rfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dec, err := decodeMUTF7(s)
		if !utf8.ValidString(s) {
			return // 8-bit bytes pass through, for validMailboxName to judge
		}
		if err == nil && !utf8.ValidString(dec) {
			t.Errorf("decodeMUTF7(%q) = %q, not UTF-8", s, dec)
		}
		enc := encodeMUTF7(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Fatalf("encodeMUTF7(%q) = %q: not printable ASCII", s, enc)
			}
		}
		dec, err = decodeMUTF7(enc)
		if err != nil || dec != s {
			t.Errorf("decodeMUTF7(encodeMUTF7(%q)) = %q, %v", s, dec, err)
		}
	})
}
