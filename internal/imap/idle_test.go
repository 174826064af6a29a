package imap

import (
	"context"
	"strings"
	"testing"
	"time"
)

// expectWithin reads one response within d and compares it.
func (c *client) expectWithin(d time.Duration, want ...string) {
	c.t.Helper()
	for _, w := range want {
		got, err := c.readResponse(d)
		if err != nil {
			c.t.Fatalf("no %q within %v: %v (%q)", w, d, err, got)
		}
		if !matches(w, got) {
			c.t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func TestIdleSeesOtherSessionsAndDeliveries(t *testing.T) {
	ts := newTestServer(t)
	for range 3 {
		ts.deliver(sampleMsg)
	}
	a := ts.login(false)
	selectInbox(a, 3)
	b := ts.login(false)
	selectInbox(b, 3)
	a.cmd("i IDLE", "+ idling")

	// \Seen from another device.
	b.cmd(`b1 STORE 1 +FLAGS (\Seen)`, `* 1 FETCH (FLAGS (\Seen))`, "b1 OK STORE completed")
	a.expectWithin(time.Second, `* 1 FETCH (UID 1 FLAGS (\Seen \Recent))`)

	// MOVE to another folder.
	b.cmd("b2 MOVE 2 Archive", `re:^\* OK \[COPYUID \d+ 2 1\] Moved$`, "* 2 EXPUNGE", "b2 OK MOVE completed")
	a.expectWithin(time.Second, "* 2 EXPUNGE")

	// EXPUNGE.
	b.cmd(`b3 STORE 2 +FLAGS.SILENT (\Deleted)`, "b3 OK STORE completed")
	a.expectWithin(time.Second, `* 2 FETCH (UID 3 FLAGS (\Deleted \Recent))`)
	b.cmd("b4 EXPUNGE", "* 2 EXPUNGE", "b4 OK EXPUNGE completed")
	a.expectWithin(time.Second, "* 2 EXPUNGE")

	// A delivery: recent for a, the session told first.
	ts.deliver(sampleMsg)
	a.expectWithin(time.Second, "* 2 EXISTS", "* 2 RECENT")

	// An expunge through the store, as POP3 does at QUIT.
	if _, err := ts.st.Expunge(context.Background(), ts.acct.ID, inboxID(t, ts), []uint32{1}); err != nil {
		t.Fatal(err)
	}
	a.expectWithin(time.Second, "* 1 EXPUNGE")

	a.cmd("DONE", "i OK IDLE completed")
	a.cmd("n UID FETCH 1:* FLAGS", `* 1 FETCH (UID 4 FLAGS (\Recent))`, "n OK FETCH completed")
	b.cmd("o NOOP", "* 2 EXISTS", "* 0 RECENT", "* 1 EXPUNGE", "o OK NOOP completed")
}

func inboxID(t *testing.T, ts *testServer) int64 {
	t.Helper()
	mb, err := ts.st.Mailbox(context.Background(), ts.acct.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return mb.ID
}

// Another session's EXPUNGE is not announced during FETCH, STORE or
// SEARCH by sequence number (RFC 9051 §7.5.1), but at the next command
// that allows it; sequence numbers keep their meaning meanwhile.
func TestNoExpungeDuringFetchStoreSearch(t *testing.T) {
	ts := newTestServer(t)
	for range 3 {
		ts.deliver(sampleMsg)
	}
	a := ts.login(false)
	selectInbox(a, 3)
	b := ts.login(false)
	selectInbox(b, 3)
	b.cmd(`b1 STORE 1 +FLAGS.SILENT (\Deleted)`, "b1 OK STORE completed")
	b.cmd("b2 EXPUNGE", "* 1 EXPUNGE", "b2 OK EXPUNGE completed")

	a.cmd("a1 FETCH 2:3 UID", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)", `* 1 FETCH (UID 1 FLAGS (\Deleted \Recent))`, "a1 OK FETCH completed")
	a.cmd("a2 FETCH 1 UID", "a2 NO [EXPUNGEISSUED] Some messages were expunged meanwhile")
	a.cmd(`a3 STORE 3 +FLAGS (\Flagged)`, `* 3 FETCH (FLAGS (\Flagged \Recent))`, "a3 OK STORE completed")
	a.cmd("a4 SEARCH FLAGGED", "* SEARCH 3", "a4 OK SEARCH completed")
	a.cmd("a5 NOOP", "* 1 EXPUNGE", "a5 OK NOOP completed")
	a.cmd("a6 FETCH 1:* UID", "* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)", "a6 OK FETCH completed")
}

// UID commands may announce expunges.
func TestExpungeDuringUIDFetch(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	ts.deliver(sampleMsg)
	a := ts.login(false)
	selectInbox(a, 2)
	if _, err := ts.st.Expunge(context.Background(), ts.acct.ID, inboxID(t, ts), []uint32{1}); err != nil {
		t.Fatal(err)
	}
	a.cmd("a UID FETCH 1:* UID", "* 2 FETCH (UID 2)", "* 1 EXPUNGE", "a OK FETCH completed")
}

// A session's own changes are reported once, by the command, not again
// from the feed.
func TestOwnChangesNotRepeated(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	a := ts.login(false)
	selectInbox(a, 1)
	a.cmd(`a STORE 1 +FLAGS (\Seen)`, `* 1 FETCH (FLAGS (\Seen \Recent))`, "a OK STORE completed")
	a.cmd("b NOOP", "b OK NOOP completed")
	a.cmd("c IDLE", "+ idling")
	a.expectNothing(200 * time.Millisecond)
	a.cmd("DONE", "c OK IDLE completed")
}

func TestIdleMultipleSessionsLatency(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	var idlers []*client
	for range 5 {
		c := ts.login(true)
		selectInbox(c, 1)
		c.cmd("i IDLE", "+ idling")
		idlers = append(idlers, c)
	}
	start := time.Now()
	ts.deliver(sampleMsg)
	for _, c := range idlers {
		c.expectWithin(time.Second, "* 2 EXISTS")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	for _, c := range idlers {
		c.cmd("done", "i OK IDLE completed")
	}
	_ = strings.ToLower
}
