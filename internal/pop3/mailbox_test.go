package pop3

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"loft/internal/store"
)

// msgA is 51 octets, msgB 62.

func TestPOP3ListingTranscript(t *testing.T) {
	ts, a := withMessages(t, nil)
	mb, _ := ts.inbox(a)
	v := mb.UIDValidity
	c := ts.dial()
	c.cmd("USER alice@example.org").expect("+OK Send your password")
	c.cmd("PASS " + testPassword).expect("+OK alice@example.org has 2 messages (113 octets)")
	c.cmd("STAT").expect("+OK 2 113")
	c.cmd("LIST").expectBody("+OK 2 messages (113 octets)", "1 51", "2 62")
	c.cmd("LIST 2").expect("+OK 2 62")
	c.cmd("UIDL").expectBody("+OK 2 messages (113 octets)", fmt.Sprintf("1 %d.1", v), fmt.Sprintf("2 %d.2", v))
	c.cmd("UIDL 1").expect(fmt.Sprintf("+OK 1 %d.1", v))
	c.cmd("NOOP").expect("+OK")
	c.cmd("QUIT").expect("+OK Loft POP3 server signing off (2 messages left)")
	c.expectClosed()
}

func TestPOP3LoginIsCaseInsensitive(t *testing.T) {
	ts, _ := withMessages(t, nil)
	c := ts.dial()
	c.cmd("user Alice@Example.ORG").expect("+OK Send your password")
	c.cmd("pass " + testPassword).expect("+OK alice@example.org has 2 messages (113 octets)")
	c.cmd("stat").expect("+OK 2 113")
}

func TestPOP3DeleteThenDroppedConnectionKeepsMessage(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.login(a.Address)
	c.cmd("DELE 1").expect("+OK Message 1 deleted")
	c.cmd("STAT").expect("+OK 1 62")
	c.conn.Close() // dropped without QUIT

	eventually(t, "the session to end", func() bool { return ts.sessions() == 0 })
	if _, msgs := ts.inbox(a); len(msgs) != 2 {
		t.Fatalf("%d messages after a dropped connection, want 2", len(msgs))
	}
	c = ts.login(a.Address)
	c.cmd("STAT").expect("+OK 2 113")
}

func TestPOP3DeleteOnlyAtQuit(t *testing.T) {
	ts, a := withMessages(t, nil)
	ts.deliver(a.Address, msgC)
	before := ts.usage(a)
	_, msgs := ts.inbox(a)
	// An IMAP session of the same account learns of expunges through the
	// change feed.
	sub := ts.st.Subscribe(a.ID)
	defer sub.Close()

	c := ts.login(a.Address)
	c.cmd("DELE 2").expect("+OK Message 2 deleted")
	c.cmd("DELE 2").expect("-ERR Message 2 is already deleted")
	c.cmd("RETR 2").expect("-ERR Message 2 is already deleted")
	c.cmd("LIST").expectBody("+OK 2 messages (106 octets)", "1 51", "3 55")
	if _, now := ts.inbox(a); len(now) != 3 {
		t.Fatalf("DELE removed a message before QUIT: %d left", len(now))
	}
	c.cmd("QUIT").expect("+OK Loft POP3 server signing off (2 messages left)")
	c.expectClosed()

	_, after := ts.inbox(a)
	var uids []uint32
	for _, m := range after {
		uids = append(uids, m.UID)
	}
	if want := []uint32{msgs[0].UID, msgs[2].UID}; !slices.Equal(uids, want) {
		t.Fatalf("UIDs after QUIT %v, want %v", uids, want)
	}
	if got, want := ts.usage(a), before-int64(len(msgB)); got != want {
		t.Fatalf("usage %d after QUIT, want %d", got, want)
	}
	var expunged []uint32
	for _, ch := range sub.Changes() {
		if ch.Kind == store.ChangeExpunge {
			expunged = append(expunged, ch.UIDs...)
		}
	}
	if !slices.Equal(expunged, []uint32{msgs[1].UID}) {
		t.Fatalf("change feed expunged %v, want [%d]", expunged, msgs[1].UID)
	}
}

func TestPOP3RsetUndoesDeletions(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.login(a.Address)
	c.cmd("DELE 1").expect("+OK Message 1 deleted")
	c.cmd("DELE 2").expect("+OK Message 2 deleted")
	c.cmd("STAT").expect("+OK 0 0")
	c.cmd("RSET").expect("+OK Maildrop has 2 messages (113 octets)")
	c.cmd("QUIT").expect("+OK Loft POP3 server signing off (2 messages left)")
	if _, msgs := ts.inbox(a); len(msgs) != 2 {
		t.Fatalf("%d messages after RSET and QUIT, want 2", len(msgs))
	}
}

func TestPOP3DeleteAllThenQuitEmptiesMaildropAndQuota(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.login(a.Address)
	c.cmd("DELE 1").expect("+OK Message 1 deleted")
	c.cmd("DELE 2").expect("+OK Message 2 deleted")
	c.cmd("QUIT").expect("+OK Loft POP3 server signing off (maildrop empty)")
	if u := ts.usage(a); u != 0 {
		t.Fatalf("usage %d, want 0", u)
	}
}

func TestPOP3ShutdownDeletesNothing(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.login(a.Address)
	c.cmd("DELE 1").expect("+OK Message 1 deleted")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.expectLine("-ERR [SYS/TEMP] Server shutting down; nothing was deleted, try again later")
	c.expectClosed()
	if _, msgs := ts.inbox(a); len(msgs) != 2 {
		t.Fatalf("%d messages after shutdown, want 2", len(msgs))
	}
}

func TestPOP3ShutdownAnswersPipelinedQuitWithoutDeleting(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.login(a.Address)
	c.cmd("DELE 1").expect("+OK Message 1 deleted")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The session is interrupted while idle; a command arriving after
	// that is refused, and nothing is deleted.
	ts.srv.mu.Lock()
	ts.srv.stop()
	ts.srv.mu.Unlock()
	c.cmd("QUIT").expect("-ERR [SYS/TEMP] Server shutting down; nothing was deleted, try again later")
	c.expectClosed()
	ts.srv.Shutdown(ctx)
	if _, msgs := ts.inbox(a); len(msgs) != 2 {
		t.Fatalf("%d messages after shutdown, want 2", len(msgs))
	}
}

func TestPOP3IdleTimeoutDeletesNothing(t *testing.T) {
	ts, a := withMessages(t, func(o *Options) { o.IdleTimeout = 200 * time.Millisecond })
	c := ts.login(a.Address)
	c.cmd("DELE 1").expect("+OK Message 1 deleted")
	start := time.Now()
	c.expectClosed()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
	eventually(t, "the session to end", func() bool { return ts.sessions() == 0 })
	if _, msgs := ts.inbox(a); len(msgs) != 2 {
		t.Fatalf("%d messages after the idle timeout, want 2", len(msgs))
	}
}

func TestPOP3DefaultIdleTimeoutIsRFCMinimum(t *testing.T) {
	// RFC 1939 §3: the autologout timer MUST be at least 10 minutes.
	if DefaultIdleTimeout < 10*time.Minute {
		t.Fatalf("DefaultIdleTimeout %v", DefaultIdleTimeout)
	}
	if New(Options{}).opts.IdleTimeout != DefaultIdleTimeout {
		t.Fatal("zero IdleTimeout is not the default")
	}
}

var uidlRE = regexp.MustCompile(`^[\x21-\x7e]{1,70}$`)

func TestPOP3UIDLStableAcrossRestartAndDeletions(t *testing.T) {
	ts, a := withMessages(t, nil)
	ts.deliver(a.Address, msgC)
	c := ts.login(a.Address)
	first := c.cmd("UIDL").body()
	c.cmd("QUIT").expectPrefix("+OK")
	for _, l := range first {
		_, id, _ := strings.Cut(l, " ")
		if !uidlRE.MatchString(id) {
			t.Fatalf("UIDL %q is not 1-70 printable characters", id)
		}
	}

	ts.restart()
	c = ts.login(a.Address)
	c.cmd("UIDL").expectBody("+OK 3 messages (168 octets)", first...)
	c.cmd("DELE 1").expectPrefix("+OK")
	c.cmd("QUIT").expectPrefix("+OK")

	// After another deletion, the others keep their UIDL (under new numbers).
	c = ts.login(a.Address)
	c.cmd("UIDL").expectBody("+OK 2 messages (117 octets)",
		"1 "+strings.Fields(first[1])[1], "2 "+strings.Fields(first[2])[1])

	// Unique within the account: another account's messages differ.
	b := ts.addAccount("bob@example.org")
	ts.deliver(b.Address, msgA)
	cb := ts.login(b.Address)
	other := strings.Fields(cb.cmd("UIDL 1").line)[2]
	for _, l := range first {
		if strings.Fields(l)[1] == other {
			t.Fatalf("UIDL %s of bob's message is also one of alice's", other)
		}
	}
}

func TestPOP3TwoSessionsWorkAtOnceByDefault(t *testing.T) {
	ts, a := withMessages(t, nil)
	c1 := ts.login(a.Address)
	c2 := ts.login(a.Address)
	c1.cmd("STAT").expect("+OK 2 113")
	c2.cmd("STAT").expect("+OK 2 113")
	c1.cmd("DELE 1").expect("+OK Message 1 deleted")
	c1.cmd("QUIT").expectPrefix("+OK")
	// Gone for the other session too, which otherwise goes on.
	c2.cmd("RETR 1").expect("-ERR Message is no longer in the mailbox (removed by another session)")
	c2.cmd("STAT").expect("+OK 1 62")
	c2.cmd("RETR 2").expect("+OK 62 octets").body()
	c2.cmd("QUIT").expect("+OK Loft POP3 server signing off (1 messages left)")
}

func TestPOP3ExclusiveModeSecondSessionIsInUse(t *testing.T) {
	ts, a := withMessages(t, func(o *Options) { o.Exclusive = true })
	c1 := ts.login(a.Address)
	c2 := ts.dial()
	c2.cmd("USER " + a.Address).expect("+OK Send your password")
	r := c2.cmd("PASS " + testPassword)
	// Not [AUTH]: the password is right, and clients that see [AUTH] ask
	// for a new one. The text names since when and from where.
	inUse := regexp.MustCompile(`^-ERR \[IN-USE\] Mailbox in use: another POP3 session from 127\.0\.0\.1 has held it since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; try again when it ends$`)
	if !inUse.MatchString(r.line) {
		t.Fatalf("second session got %q", r.line)
	}
	// A wrong password is still [AUTH], whatever the lock.
	c2.cmd("USER " + a.Address).expect("+OK Send your password")
	c2.cmd("PASS wrong").expect("-ERR [AUTH] Authentication failed")
	// The pop3s listener shares the lock.
	c3 := ts.dialTLS()
	c3.cmd("USER " + a.Address).expect("+OK Send your password")
	c3.cmd("PASS " + testPassword).expectPrefix("-ERR [IN-USE] ")

	c1.cmd("QUIT").expectPrefix("+OK")
	c1.expectClosed()
	eventually(t, "the lock to be released", func() bool { return ts.sessions() == 2 })
	c2.login(a.Address)
	c2.cmd("STAT").expect("+OK 2 113")
}

func TestPOP3MessageExpungedMeanwhileAnswersErr(t *testing.T) {
	ts, a := withMessages(t, nil)
	ts.deliver(a.Address, msgC)
	mb, msgs := ts.inbox(a)
	c := ts.login(a.Address)
	// IMAP (here: the store directly) expunges messages 1 and 2.
	if _, err := ts.st.Expunge(context.Background(), a.ID, mb.ID, []uint32{msgs[0].UID, msgs[1].UID}); err != nil {
		t.Fatal(err)
	}
	gone := "-ERR Message is no longer in the mailbox (removed by another session)"
	c.cmd("RETR 1").expect(gone)
	c.cmd("TOP 1 0").expect(gone)
	c.cmd("DELE 2").expect(gone)
	c.cmd("LIST 2").expect(gone)
	c.cmd("UIDL 1").expect(gone)
	c.cmd("STAT").expect("+OK 1 55")
	c.cmd("LIST").expectBody("+OK 1 messages (55 octets)", "3 55")
	c.cmd("RETR 3").expect("+OK 55 octets").body()
	c.cmd("DELE 3").expect("+OK Message 3 deleted")
	c.cmd("QUIT").expect("+OK Loft POP3 server signing off (maildrop empty)")
	if u := ts.usage(a); u != 0 {
		t.Fatalf("usage %d, want 0", u)
	}
}

func TestPOP3BodyFileRemovedMeanwhileAnswersErr(t *testing.T) {
	// When an expunge lands between a session's sync and its opening the
	// body file, OpenBody's ErrNoMessage is still the "gone" answer.
	err := fmt.Errorf("store: %w", store.ErrNoMessage)
	if r := errorReply(err); r != errMessageGone {
		t.Fatalf("ErrNoMessage maps to %q", r)
	}
}

func TestPOP3MessageMovedOutOfInboxIsNotListed(t *testing.T) {
	ts, a := withMessages(t, nil)
	// Filed into another mailbox (as an IMAP MOVE or a filter would).
	if _, err := ts.st.Append(context.Background(), a.ID, "Archive", strings.NewReader(msgC), store.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	c := ts.login(a.Address)
	c.cmd("STAT").expect("+OK 2 113")
	c.cmd("LIST").expectBody("+OK 2 messages (113 octets)", "1 51", "2 62")
}

func TestPOP3NewMailAppearsAtNextLogin(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.login(a.Address)
	ts.deliver(a.Address, msgC)
	c.cmd("STAT").expect("+OK 2 113") // the snapshot is fixed
	c.cmd("LIST 3").expect("-ERR No such message: there are 2 messages")
	c.cmd("QUIT").expectPrefix("+OK")
	c = ts.login(a.Address)
	c.cmd("STAT").expect("+OK 3 168")
}

// sessions counts the server's live sessions.
func (ts *testServer) sessions() int {
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	return len(ts.srv.sessions)
}
