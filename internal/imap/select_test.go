package imap

import (
	"context"
	"strings"
	"testing"

	"loft/internal/store"
)

func TestSelectRev1(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	ts.deliver(sampleMsg)
	c := ts.login(false)
	c.cmd("a SELECT inbox",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted`,
		`* 2 EXISTS`,
		`* 2 RECENT`,
		`* OK [UNSEEN 1] First unseen message`,
		`re:^\* OK \[UIDVALIDITY \d+\] UIDs valid$`,
		`* OK [UIDNEXT 3] Predicted next UID`,
		`* OK [HIGHESTMODSEQ 3] Highest`,
		`a OK [READ-WRITE] SELECT completed`)
	c.cmd("b EXAMINE Sent",
		`* OK [CLOSED] Previous mailbox is now closed`,
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS ()] Read-only mailbox`,
		`* 0 EXISTS`,
		`* 0 RECENT`,
		`re:^\* OK \[UIDVALIDITY \d+\] UIDs valid$`,
		`* OK [UIDNEXT 1] Predicted next UID`,
		`* OK [HIGHESTMODSEQ 1] Highest`,
		`b OK [READ-ONLY] EXAMINE completed`)
	c.cmd(`c FETCH 1 FLAGS`, "c BAD Invalid message sequence number (mailbox has 0 messages)")
	c.cmd(`d SELECT Nope`, `* OK [CLOSED] Previous mailbox is now closed`, "d NO [NONEXISTENT] No such mailbox")
	c.cmd(`e FETCH 1 FLAGS`, "e BAD FETCH is not allowed in the authenticated state")
}

// IMAP4rev2: no RECENT, no UNSEEN code, a LIST response, ESEARCH.
func TestSelectRev2(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	c := ts.login(true)
	c.cmd("a SELECT INBOX",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted`,
		`* 1 EXISTS`,
		`re:^\* OK \[UIDVALIDITY \d+\] UIDs valid$`,
		`* OK [UIDNEXT 2] Predicted next UID`,
		`* OK [HIGHESTMODSEQ 2] Highest`,
		`* LIST () "/" "INBOX"`,
		`a OK [READ-WRITE] SELECT completed`)
	c.cmd("b SEARCH UNSEEN", `* ESEARCH (TAG "b") ALL 1`, "b OK SEARCH completed")
	c.cmd("c UNSELECT", "c OK UNSELECT completed")
	c.cmd("d FETCH 1 FLAGS", "d BAD FETCH is not allowed in the authenticated state")
}

func TestSelectShowsKeywords(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	c := ts.login(false)
	selectInbox(c, 1)
	c.cmd(`a STORE 1 +FLAGS.SILENT ($Work)`, "a OK STORE completed")
	c.cmd("b SELECT INBOX",
		`* OK [CLOSED] Previous mailbox is now closed`,
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Work)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Work \*)] Flags permitted`,
		`re:.*`, `re:.*`, `re:.*`, `re:.*`, `re:.*`, `re:.*`, `re:^b OK`)
}

// selectInbox selects INBOX with n messages (rev1 or rev2 client alike).
func selectInbox(c *client, n int) {
	c.t.Helper()
	selectMailbox(c, "SELECT", "INBOX", n)
}

// selectMailbox runs SELECT or EXAMINE and checks the message count.
func selectMailbox(c *client, verb, name string, n int) {
	c.t.Helper()
	res := c.run("S1 " + verb + " " + name)
	want := "* " + itoa(n) + " EXISTS"
	for _, l := range res {
		if l == want {
			if !strings.HasPrefix(res[len(res)-1], "S1 OK [READ-") {
				c.t.Fatalf("select: %q", res)
			}
			return
		}
	}
	c.t.Fatalf("select: no %q in %q", want, res)
}

// Sessions that select one mailbox share its UID array with the store's
// index; one session's EXPUNGE must not change another's sequence numbers
// before that one is told.
func TestExpungeInOneSessionKeepsOthersNumbers(t *testing.T) {
	ts := newTestServer(t)
	for range 3 {
		ts.deliver(sampleMsg)
	}
	a, b := ts.login(false), ts.login(false)
	a.run("a1 SELECT INBOX")
	b.run("b1 SELECT INBOX")
	mb, err := ts.st.Mailbox(context.Background(), ts.acct.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.st.Expunge(context.Background(), ts.acct.ID, mb.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	a.cmd("a2 NOOP", "* 1 EXPUNGE", "a2 OK NOOP completed")
	b.cmd("b2 FETCH 2:3 (UID)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)", "b2 OK FETCH completed")
	b.cmd("b3 NOOP", "* 1 EXPUNGE", "b3 OK NOOP completed")
	b.cmd("b4 FETCH 1:* (UID)", "* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)", "b4 OK FETCH completed")
}

// EXPUNGE removes the \Deleted messages the session knows of; one that
// arrived meanwhile, not yet announced, stays for a later EXPUNGE.
func TestExpungeSkipsUnannouncedMessages(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	c := ts.login(false)
	selectInbox(c, 1)
	c.cmd(`a STORE 1 +FLAGS.SILENT (\Deleted)`, "a OK STORE completed")
	ts.deliver(sampleMsg)
	if _, err := ts.st.StoreFlags(context.Background(), ts.acct.ID, inboxID(t, ts), []uint32{2}, store.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	c.cmd("b EXPUNGE", "* 1 EXPUNGE", "* 1 EXISTS", "* 1 RECENT", `* 1 FETCH (UID 2 FLAGS (\Deleted \Recent))`, "b OK EXPUNGE completed")
	c.cmd("c EXPUNGE", "* 1 EXPUNGE", "c OK EXPUNGE completed")
	c.cmd("d EXPUNGE", "d OK EXPUNGE completed")
}
