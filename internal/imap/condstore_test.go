package imap

// CONDSTORE (RFC 7162 §3.1): the examples of the RFC replayed over TCP,
// with Loft's own numbers. A mailbox's modseq starts at 1 and every change
// bumps it, so after n deliveries message UID u has modseq u+1 and the
// mailbox HIGHESTMODSEQ n+1.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// deliverN delivers n sample messages to INBOX.
func (ts *testServer) deliverN(n int) {
	ts.t.Helper()
	for range n {
		ts.deliver(sampleMsg)
	}
}

// responsesLike returns the responses that match re.
func responsesLike(out []string, re string) []string {
	var got []string
	r := regexp.MustCompile(re)
	for _, l := range out {
		if r.MatchString(l) {
			got = append(got, l)
		}
	}
	return got
}

// uidValidity returns the UIDVALIDITY of a SELECT's responses.
func uidValidity(t testing.TB, out []string) uint32 {
	t.Helper()
	for _, l := range out {
		if m := regexp.MustCompile(`^\* OK \[UIDVALIDITY (\d+)\]`).FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 32)
			return uint32(n)
		}
	}
	t.Fatalf("no UIDVALIDITY in %q", out)
	return 0
}

// §3.1.8 and §3.1.2.1: SELECT (CONDSTORE) enables CONDSTORE and reports
// HIGHESTMODSEQ; §3.1.6: STATUS HIGHESTMODSEQ; §3.1.4.2: FETCH MODSEQ.
func TestCondstoreSelectStatusFetchModseq(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(3)
	c := ts.login(false)
	c.cmd("A042 STATUS INBOX (UIDNEXT MESSAGES HIGHESTMODSEQ)",
		`* STATUS "INBOX" (UIDNEXT 4 MESSAGES 3 HIGHESTMODSEQ 4)`, "A042 OK STATUS completed")
	c.cmd("A142 SELECT INBOX (CONDSTORE)",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted`,
		`* 3 EXISTS`,
		`* 3 RECENT`,
		`* OK [UNSEEN 1] First unseen message`,
		`re:^\* OK \[UIDVALIDITY \d+\] UIDs valid$`,
		`* OK [UIDNEXT 4] Predicted next UID`,
		`* OK [HIGHESTMODSEQ 4] Highest`,
		`A142 OK [READ-WRITE] SELECT completed`)
	c.cmd("a FETCH 1:3 (MODSEQ)",
		"* 1 FETCH (MODSEQ (2))", "* 2 FETCH (MODSEQ (3))", "* 3 FETCH (MODSEQ (4))", "a OK FETCH completed")
	// A bad parameter is a command not run: INBOX stays selected.
	c.cmd("b SELECT INBOX (FROB)", "b BAD Unknown SELECT parameter FROB")
	c.cmd("c FETCH 3 (MODSEQ)", "* 3 FETCH (MODSEQ (4))", "c OK FETCH completed")
}

// §3.1: a CONDSTORE enabling command in the selected state makes the
// server report HIGHESTMODSEQ, and from then on every FETCH of a flag
// change carries MODSEQ.
func TestCondstoreEnabledWhileSelected(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(2)
	a := ts.login(false)
	selectInbox(a, 2)
	a.cmd("e ENABLE CONDSTORE", "* OK [HIGHESTMODSEQ 3] Highest", "* ENABLED CONDSTORE", "e OK ENABLE completed")
	a.cmd("f ENABLE CONDSTORE", "* ENABLED", "f OK ENABLE completed")
	b := ts.login(false)
	selectInbox(b, 2)
	b.cmd(`s STORE 2 +FLAGS (\Flagged)`, `* 2 FETCH (FLAGS (\Flagged))`, "s OK STORE completed")
	a.cmd("n NOOP", `* 2 FETCH (UID 2 FLAGS (\Flagged \Recent) MODSEQ (4))`, "n OK NOOP completed")
	// STORE without UNCHANGEDSINCE reports the new modseq too.
	a.cmd(`s STORE 1 +FLAGS (\Seen)`, `* 1 FETCH (FLAGS (\Seen \Recent) MODSEQ (5))`, "s OK STORE completed")
	// So does a FETCH that sets \Seen.
	a.cmd("g FETCH 2 (BODY[HEADER.FIELDS (SUBJECT)])",
		"* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: Hello\r\n\r\n MODSEQ (6) FLAGS (\\Seen \\Flagged \\Recent))",
		"g OK FETCH completed")
}

// §3.1.3: STORE with UNCHANGEDSINCE, Examples 1 to 4 of the RFC.
func TestCondstoreUnchangedSince(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(10) // UIDs 1..10, modseqs 2..11
	a := ts.login(false)
	a.cmd("E ENABLE CONDSTORE", "* ENABLED CONDSTORE", "E OK ENABLE completed")
	selectInbox(a, 10)
	b := ts.login(false)
	selectInbox(b, 10)
	// Another client changes messages 7 and 9 (modseqs 12, 13).
	b.cmd(`b1 STORE 7,9 +FLAGS.SILENT ($Processed)`, "b1 OK STORE completed")

	// Example 1: 5 passes, 7 and 9 fail.
	a.cmd(`a102 STORE 7,5,9 (UNCHANGEDSINCE 11) +FLAGS.SILENT (\Deleted)`,
		"* 5 FETCH (MODSEQ (14))",
		`* 7 FETCH (UID 7 FLAGS ($Processed \Recent) MODSEQ (12))`,
		`* 9 FETCH (UID 9 FLAGS ($Processed \Recent) MODSEQ (13))`,
		"a102 OK [MODIFIED 7,9] Conditional STORE failed")
	// Example 3: all pass; a message that already has the flag keeps its
	// modseq, and every one gets a FETCH with MODSEQ despite .SILENT.
	a.cmd(`a103 UID STORE 6,4,5 (UNCHANGEDSINCE 14) +FLAGS.SILENT (\Deleted)`,
		"* 4 FETCH (UID 4 MODSEQ (15))",
		"* 5 FETCH (UID 5 MODSEQ (14))",
		"* 6 FETCH (UID 6 MODSEQ (16))",
		"a103 OK STORE completed")
	// Example 4: by sequence number, "*".
	a.cmd(`a104 STORE * (UNCHANGEDSINCE 16) +FLAGS.SILENT (\Deleted $Processed)`,
		"* 10 FETCH (MODSEQ (17))", "a104 OK STORE completed")
	// Example 6 shape: not silent, the flags and the modseq.
	a.cmd(`a105 STORE 1 (UNCHANGEDSINCE 17) FLAGS (\Seen \Flagged)`,
		`* 1 FETCH (FLAGS (\Seen \Flagged \Recent) MODSEQ (18))`, "a105 OK STORE completed")
	// UNCHANGEDSINCE 0 fails for every existing message.
	a.cmd(`a106 UID STORE 2:3 (UNCHANGEDSINCE 0) +FLAGS (\Seen)`, "a106 OK [MODIFIED 2:3] Conditional STORE failed")
	a.cmd(`a107 STORE 2 (FROB 1) +FLAGS (\Seen)`, "a107 BAD Unknown STORE modifier FROB")
	// The other client, without CONDSTORE, sees the changes without
	// modseqs, once each.
	b.cmd("b2 NOOP", `* 5 FETCH (UID 5 FLAGS (\Deleted))`, `* 4 FETCH (UID 4 FLAGS (\Deleted))`,
		`* 6 FETCH (UID 6 FLAGS (\Deleted))`, `* 10 FETCH (UID 10 FLAGS (\Deleted $Processed))`,
		`* 1 FETCH (UID 1 FLAGS (\Seen \Flagged))`, "b2 OK NOOP completed")
}

// §3.1.4.1: FETCH CHANGEDSINCE, with MODSEQ added to each response.
func TestCondstoreFetchChangedSince(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(8)
	c := ts.login(false)
	c.cmd("E ENABLE CONDSTORE", "* ENABLED CONDSTORE", "E OK ENABLE completed")
	selectInbox(c, 8)
	c.cmd(`a STORE 4 +FLAGS.SILENT (\Seen)`, "* 4 FETCH (MODSEQ (10))", "a OK STORE completed")
	c.cmd(`b STORE 6 +FLAGS.SILENT (\Deleted)`, "* 6 FETCH (MODSEQ (11))", "b OK STORE completed")
	c.cmd(`c STORE 8 +FLAGS.SILENT ($NoJunk $AutoJunk $MDNSent)`, "* 8 FETCH (MODSEQ (12))", "c OK STORE completed")
	c.cmd("s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 9)",
		`* 4 FETCH (UID 4 MODSEQ (10) FLAGS (\Seen \Recent))`,
		`* 6 FETCH (UID 6 MODSEQ (11) FLAGS (\Deleted \Recent))`,
		`* 8 FETCH (UID 8 MODSEQ (12) FLAGS ($AutoJunk $MDNSent $NoJunk \Recent))`,
		"s100 OK FETCH completed")
	c.cmd("s101 FETCH 1:7 (FLAGS) (CHANGEDSINCE 10)", `* 6 FETCH (MODSEQ (11) FLAGS (\Deleted \Recent))`, "s101 OK FETCH completed")
	c.cmd("s102 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12)", "s102 OK FETCH completed")
	c.cmd("s103 FETCH 1 (FLAGS) (CHANGEDSINCE 0)", "s103 BAD CHANGEDSINCE must not be 0")
	c.cmd("s104 UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)", "s104 BAD VANISHED needs UID FETCH and QRESYNC enabled")
}

// §3.1.5: SEARCH MODSEQ, with the highest modseq of the matches appended;
// none when nothing matches. And ESEARCH's MODSEQ.
func TestCondstoreSearchModseq(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(5)
	c := ts.login(false)
	selectInbox(c, 5)
	c.cmd(`a STORE 2 +FLAGS.SILENT (\Draft)`, "a OK STORE completed")
	// MODSEQ enables CONDSTORE, which reports HIGHESTMODSEQ first.
	c.cmd(`b SEARCH MODSEQ "/flags/\\draft" all 5`, "* OK [HIGHESTMODSEQ 7] Highest", "* SEARCH 2 4 5 (MODSEQ 7)", "b OK SEARCH completed")
	c.cmd(`c SEARCH MODSEQ 6`, "* SEARCH 2 5 (MODSEQ 7)", "c OK SEARCH completed")
	c.cmd("t SEARCH OR NOT MODSEQ 1 LARGER 50000", "* SEARCH", "t OK SEARCH completed")
	c.cmd("u UID SEARCH RETURN (ALL) MODSEQ 3", `* ESEARCH (TAG "u") UID ALL 2:5 MODSEQ 7`, "u OK SEARCH completed")
	c.cmd(`v SEARCH MODSEQ "/flags/\\draft" bogus 5`, "v BAD Unknown MODSEQ entry type bogus")
}

// CONDSTORE with EXPUNGE: the tagged OK carries the new HIGHESTMODSEQ;
// and while another session's expunge cannot be announced (a command by
// sequence number), the session says that its modseq is not yet reached.
func TestCondstoreExpungeHighestModseq(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(4)
	a := ts.login(false)
	a.cmd("E ENABLE CONDSTORE", "* ENABLED CONDSTORE", "E OK ENABLE completed")
	selectInbox(a, 4)
	a.cmd(`a STORE 2 +FLAGS.SILENT (\Deleted)`, "* 2 FETCH (MODSEQ (6))", "a OK STORE completed")
	a.cmd("b EXPUNGE", "* 2 EXPUNGE", "b OK [HIGHESTMODSEQ 7] EXPUNGE completed")

	b := ts.login(false)
	selectInbox(b, 3)
	b.cmd(`c STORE 1 +FLAGS.SILENT (\Deleted)`, "c OK STORE completed")
	b.cmd("d EXPUNGE", "* 1 EXPUNGE", "d OK EXPUNGE completed") // modseqs 8, 9
	a.cmd(`e STORE 3 +FLAGS (\Seen)`,
		`* 3 FETCH (FLAGS (\Seen \Recent) MODSEQ (10))`,
		`* 1 FETCH (UID 1 FLAGS (\Deleted \Recent) MODSEQ (8))`,
		"* OK [HIGHESTMODSEQ 8] Expunges pending",
		"e OK STORE completed")
	a.cmd("f NOOP", "* 1 EXPUNGE", "f OK NOOP completed")
}

func TestCondstoreCapability(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	out := c.run("a CAPABILITY")
	for _, capa := range []string{"CONDSTORE", "QRESYNC"} {
		if !strings.Contains(out[0], " "+capa+" ") {
			t.Errorf("no %s in %q", capa, out[0])
		}
	}
	_ = fmt.Sprint
}
