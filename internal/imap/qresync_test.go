package imap

// QRESYNC (RFC 7162 §3.2): the examples of the RFC replayed over TCP, and
// the resync a reconnecting phone makes.

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// A client that resyncs with QRESYNC after another session changed 3
// flags and expunged 2 messages receives exactly those 3 FETCH and one
// VANISHED (EARLIER) with those 2 UIDs.
func TestQresyncResyncAfterOtherSessionChanges(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(10)
	a := ts.login(true)
	a.cmd("q ENABLE QRESYNC", "* ENABLED QRESYNC", "q OK ENABLE completed")
	out := a.run("s SELECT INBOX")
	uv := uidValidity(t, out)
	if !slices.Contains(out, "* OK [HIGHESTMODSEQ 11] Highest") {
		t.Fatalf("select: %q", out)
	}
	a.cmd("l LOGOUT", "* BYE Logging out", "l OK LOGOUT completed")

	b := ts.login(false)
	selectInbox(b, 10)
	b.cmd(`b1 UID STORE 2,5,7 +FLAGS.SILENT (\Seen)`, "b1 OK STORE completed")
	b.cmd(`b2 UID STORE 3,9 +FLAGS.SILENT (\Deleted)`, "b2 OK STORE completed")
	b.cmd("b3 UID EXPUNGE 3,9", "* 3 EXPUNGE", "* 8 EXPUNGE", "b3 OK EXPUNGE completed")

	a = ts.login(true)
	a.cmd("q ENABLE QRESYNC", "* ENABLED QRESYNC", "q OK ENABLE completed")
	a.cmd(fmt.Sprintf("s SELECT INBOX (QRESYNC (%d 11 1:10))", uv),
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted`,
		`* 8 EXISTS`,
		fmt.Sprintf(`* OK [UIDVALIDITY %d] UIDs valid`, uv),
		`* OK [UIDNEXT 11] Predicted next UID`,
		`* OK [HIGHESTMODSEQ 17] Highest`,
		`* LIST () "/" "INBOX"`,
		`* VANISHED (EARLIER) 3,9`,
		`* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (12))`,
		`* 4 FETCH (UID 5 FLAGS (\Seen) MODSEQ (13))`,
		`* 6 FETCH (UID 7 FLAGS (\Seen) MODSEQ (14))`,
		`s OK [READ-WRITE] SELECT completed`)
	// Nothing more arrives later: the resync was exact.
	a.cmd("n NOOP", "n OK NOOP completed")
}

// §3.2.5.2: the RFC's example shapes: known UIDs limit the report, a stale
// UIDVALIDITY gets a plain SELECT, QRESYNC needs ENABLE first, and the
// sequence match data is accepted.
func TestQresyncSelectParameters(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(6)
	c := ts.login(false)
	c.cmd("a SELECT INBOX (QRESYNC (1 1))", "a BAD QRESYNC is not enabled")
	c.cmd("A01 ENABLE QRESYNC", "* ENABLED QRESYNC", "A01 OK ENABLE completed")
	out := c.run("b EXAMINE INBOX")
	uv := uidValidity(t, out)
	c.cmd("c UNSELECT", "c OK UNSELECT completed")
	b := ts.login(false)
	selectInbox(b, 6)
	b.cmd(`d UID STORE 1,2,6 +FLAGS.SILENT (\Deleted)`, "d OK STORE completed")
	b.cmd("e UID EXPUNGE 1,2,6", "* 1 EXPUNGE", "* 1 EXPUNGE", "* 4 EXPUNGE", "e OK EXPUNGE completed")
	b.cmd(`f UID STORE 4 +FLAGS.SILENT ($Done)`, "f OK STORE completed")

	// Known UIDs 2:5: UIDs 1 and 6 are the client's business no more.
	out = c.run(fmt.Sprintf("A02 SELECT INBOX (QRESYNC (%d 7 2:5 (1:3 2:4)))", uv))
	got := responsesLike(out, `VANISHED|FETCH`)
	want := []string{"* VANISHED (EARLIER) 2", `* 2 FETCH (UID 4 FLAGS ($Done) MODSEQ (12))`}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	// Without known UIDs: all of them.
	out = c.run(fmt.Sprintf("A03 EXAMINE INBOX (QRESYNC (%d 7))", uv))
	if got := responsesLike(out, `VANISHED|FETCH`); !slices.Equal(got, []string{"* VANISHED (EARLIER) 1:2,6", want[1]}) {
		t.Fatalf("got %q", got)
	}
	// A stale UIDVALIDITY: a plain select.
	out = c.run(fmt.Sprintf("A04 SELECT INBOX (QRESYNC (%d 7 1:6))", uv+1))
	if got := responsesLike(out, `VANISHED|FETCH`); len(got) != 0 {
		t.Fatalf("got %q", got)
	}
	c.cmd("A05 SELECT INBOX (QRESYNC (0 7))", "A05 BAD UIDVALIDITY and modseq must not be 0")
	c.cmd(fmt.Sprintf("A06 SELECT INBOX (QRESYNC (%d 7 1:6 (1:3)))", uv), "A06 BAD expected ' ' at \")))\"")
}

// §3.2.6: UID FETCH with CHANGEDSINCE and VANISHED; §3.2.7 and §3.2.10:
// EXPUNGE answered by VANISHED, with HIGHESTMODSEQ in the tagged OK.
func TestQresyncFetchVanishedAndExpunge(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(8)
	c := ts.login(false)
	c.cmd("A01 ENABLE QRESYNC", "* ENABLED QRESYNC", "A01 OK ENABLE completed")
	selectInbox(c, 8)
	c.cmd(`a UID STORE 1,3 +FLAGS.SILENT (\Deleted)`, "* 1 FETCH (UID 1 MODSEQ (10))", "* 3 FETCH (UID 3 MODSEQ (11))", "a OK STORE completed")
	c.cmd("A202 EXPUNGE", "* VANISHED 1,3", "A202 OK [HIGHESTMODSEQ 12] EXPUNGE completed")
	c.cmd(`b UID STORE 4 +FLAGS (\Seen)`, `* 2 FETCH (UID 4 FLAGS (\Seen \Recent) MODSEQ (13))`, "b OK STORE completed")
	c.cmd(`c UID STORE 6 +FLAGS.SILENT (\Deleted $MDNSent)`, "* 4 FETCH (UID 6 MODSEQ (14))", "c OK STORE completed")
	c.cmd("A03 UID FETCH 2:6 (FLAGS) (CHANGEDSINCE 9 VANISHED)",
		"* VANISHED (EARLIER) 3",
		`* 2 FETCH (UID 4 MODSEQ (13) FLAGS (\Seen \Recent))`,
		`* 4 FETCH (UID 6 MODSEQ (14) FLAGS (\Deleted $MDNSent \Recent))`,
		"A03 OK FETCH completed")
	// Once QRESYNC is on, every UID FETCH response carries MODSEQ.
	c.cmd("d UID FETCH 2 FLAGS", `* 1 FETCH (UID 2 MODSEQ (3) FLAGS (\Recent))`, "d OK FETCH completed")
	c.cmd("e UID FETCH 2 FLAGS (VANISHED)", "e BAD VANISHED needs CHANGEDSINCE")
	c.cmd("f FETCH 2 FLAGS (CHANGEDSINCE 1 VANISHED)", "f BAD VANISHED needs UID FETCH and QRESYNC enabled")

	// Another session's expunge arrives as VANISHED, also in IDLE; the
	// expunge of a UID this session never knew is not reported.
	o := ts.login(false)
	selectInbox(o, 6)
	c.cmd("i IDLE", "+ idling")
	o.cmd(`o1 UID STORE 5 +FLAGS.SILENT (\Deleted)`, "o1 OK STORE completed")
	c.expectWithin(time.Second, `* 3 FETCH (UID 5 FLAGS (\Deleted \Recent) MODSEQ (15))`)
	o.cmd("o2 UID EXPUNGE 5", "* 3 EXPUNGE", "o2 OK EXPUNGE completed")
	c.expectWithin(time.Second, "* VANISHED 5")
	c.cmd("DONE", "i OK IDLE completed")
	// MOVE reports VANISHED too.
	c.cmd("g UID MOVE 7 Archive", `re:^\* OK \[COPYUID \d+ 7 1\] Moved$`, "* VANISHED 7", "g OK MOVE completed")
	c.cmd("h FETCH 1:* (UID)", "* 1 FETCH (UID 2)", "* 2 FETCH (UID 4)", "* 3 FETCH (UID 6)", "* 4 FETCH (UID 8)", "h OK FETCH completed")
}
