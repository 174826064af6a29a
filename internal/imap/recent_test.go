package imap

import (
	"testing"
	"time"
)

// RFC 3501 §2.3.2: a message is \Recent in the first session told about
// it, and in no other. EXAMINE shows recent messages without claiming
// them; the first SELECT claims them; a delivery while a session has the
// mailbox selected is recent for the session that announces it first.
func TestRecentGoesToTheFirstSessionOnly(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(2)
	peek, first, second := ts.login(false), ts.login(false), ts.login(false)

	peek.cmd("p1 STATUS INBOX (MESSAGES RECENT)", `* STATUS "INBOX" (MESSAGES 2 RECENT 2)`, "p1 OK STATUS completed")
	peek.cmd("p2 EXAMINE INBOX",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS ()] Read-only mailbox`,
		`* 2 EXISTS`,
		`* 2 RECENT`,
		`* OK [UNSEEN 1] First unseen message`,
		`re:^\* OK \[UIDVALIDITY \d+\] UIDs valid$`,
		`* OK [UIDNEXT 3] Predicted next UID`,
		`* OK [HIGHESTMODSEQ 3] Highest`,
		`p2 OK [READ-ONLY] EXAMINE completed`)

	first.cmd("a1 SELECT INBOX",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted`,
		`* 2 EXISTS`,
		`* 2 RECENT`,
		`* OK [UNSEEN 1] First unseen message`,
		`re:^\* OK \[UIDVALIDITY \d+\] UIDs valid$`,
		`* OK [UIDNEXT 3] Predicted next UID`,
		`* OK [HIGHESTMODSEQ 3] Highest`,
		`a1 OK [READ-WRITE] SELECT completed`)
	second.cmd("b1 SELECT INBOX",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted`,
		`* 2 EXISTS`,
		`* 0 RECENT`,
		`* OK [UNSEEN 1] First unseen message`,
		`re:^\* OK \[UIDVALIDITY \d+\] UIDs valid$`,
		`* OK [UIDNEXT 3] Predicted next UID`,
		`* OK [HIGHESTMODSEQ 3] Highest`,
		`b1 OK [READ-WRITE] SELECT completed`)
	first.cmd("a2 FETCH 1:2 FLAGS", `* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS (\Recent))`, "a2 OK FETCH completed")
	second.cmd("b2 FETCH 1:2 FLAGS", `* 1 FETCH (FLAGS ())`, `* 2 FETCH (FLAGS ())`, "b2 OK FETCH completed")
	second.cmd("b3 STATUS INBOX (RECENT)", `* STATUS "INBOX" (RECENT 0)`, "b3 OK STATUS completed")
	first.cmd("a3 STATUS INBOX (RECENT)", `* STATUS "INBOX" (RECENT 2)`, "a3 OK STATUS completed")

	// A delivery while both have INBOX selected: first, in IDLE, is told
	// at once and gets it; second hears of it later, not as recent.
	first.cmd("a4 IDLE", "+ idling")
	ts.deliver(sampleMsg)
	first.expectWithin(2*time.Second, "* 3 EXISTS", "* 3 RECENT")
	first.cmd("DONE", "a4 OK IDLE completed")
	second.cmd("b4 NOOP", "* 3 EXISTS", "* 0 RECENT", "b4 OK NOOP completed")
	first.cmd("a5 FETCH 3 FLAGS", `* 3 FETCH (FLAGS (\Recent))`, "a5 OK FETCH completed")
	second.cmd("b5 FETCH 3 FLAGS", `* 3 FETCH (FLAGS ())`, "b5 OK FETCH completed")

	// SEARCH RECENT, NEW (recent and unseen) and OLD.
	first.cmd(`a6 STORE 1 +FLAGS.SILENT (\Seen)`, "a6 OK STORE completed")
	first.cmd("a7 SEARCH RECENT", "* SEARCH 1 2 3", "a7 OK SEARCH completed")
	first.cmd("a8 SEARCH NEW", "* SEARCH 2 3", "a8 OK SEARCH completed")
	first.cmd("a9 SEARCH OLD", "* SEARCH", "a9 OK SEARCH completed")
	second.cmd("b6 NOOP", `* 1 FETCH (UID 1 FLAGS (\Seen))`, "b6 OK NOOP completed")
	second.cmd("b7 SEARCH RECENT", "* SEARCH", "b7 OK SEARCH completed")
	second.cmd("b8 SEARCH OLD", "* SEARCH 1 2 3", "b8 OK SEARCH completed")

	// Once claimed, a message is recent for no later session.
	peek.cmd("p3 EXAMINE INBOX", "* OK [CLOSED] Previous mailbox is now closed", `re:.*`, `re:.*`, "* 3 EXISTS", "* 0 RECENT",
		`re:.*`, `re:.*`, `re:.*`, `re:.*`, `re:^p3 OK`)
	peek.cmd("p4 STATUS INBOX (RECENT)", `* STATUS "INBOX" (RECENT 0)`, "p4 OK STATUS completed")
}

// IMAP4rev2 has no \Recent (RFC 9051 §2.3.2): a rev2 session gets no
// RECENT response and no \Recent flag, though it claims like any other.
func TestRecentNotShownToRev2(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(1)
	c := ts.login(true)
	out := c.run("a SELECT INBOX")
	for _, l := range out {
		if l == "* 1 RECENT" || l == "* 0 RECENT" {
			t.Errorf("rev2 SELECT said %q", l)
		}
	}
	c.cmd("b FETCH 1 FLAGS", "* 1 FETCH (FLAGS ())", "b OK FETCH completed")
	c.cmd("i IDLE", "+ idling")
	ts.deliver(sampleMsg)
	c.expectWithin(2*time.Second, "* 2 EXISTS")
	c.cmd("DONE", "i OK IDLE completed")
	o := ts.login(false)
	o.cmd("s STATUS INBOX (RECENT)", `* STATUS "INBOX" (RECENT 0)`, "s OK STATUS completed")
}
