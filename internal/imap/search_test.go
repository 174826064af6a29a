package imap

import (
	"testing"
)

func searchServer(t *testing.T) (*testServer, *client) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)    // 1: from Bob, "Hello"
	ts.deliver(multipartMsg) // 2: from Jörg, "Files", body "Hello"
	ts.deliver("From: carol@example.com\r\nSubject: =?utf-8?q?R=C3=A9sum=C3=A9?=\r\nDate: Wed, 4 Jan 2023 08:00:00 +0000\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=E8me\r\n") // 3
	c := ts.login(false)
	selectInbox(c, 3)
	c.cmd(`s STORE 2 +FLAGS.SILENT (\Flagged $Work)`, "s OK STORE completed")
	c.cmd(`s STORE 3 +FLAGS.SILENT (\Seen)`, "s OK STORE completed")
	return ts, c
}

func TestSearchCriteria(t *testing.T) {
	_, c := searchServer(t)
	for _, tc := range []struct{ q, want string }{
		{"ALL", "* SEARCH 1 2 3"},
		{"FLAGGED", "* SEARCH 2"},
		{"UNFLAGGED", "* SEARCH 1 3"},
		{"SEEN", "* SEARCH 3"},
		{"UNSEEN", "* SEARCH 1 2"},
		{"KEYWORD $Work", "* SEARCH 2"},
		{"UNKEYWORD $work", "* SEARCH 1 3"},
		{"FROM bob", "* SEARCH 1"},
		{`FROM "Jörg"`, "* SEARCH 2"},
		{`SUBJECT "résumé"`, "* SEARCH 3"},
		{"TO alice", "* SEARCH 1 2"},
		{`HEADER Message-ID "<1@example.net>"`, "* SEARCH 1"},
		{`HEADER MIME-Version ""`, "* SEARCH 2"},
		{"BODY hello", "* SEARCH 2"},
		{"BODY hi", "* SEARCH 1"},
		{"TEXT hello", "* SEARCH 1 2"},
		{`BODY "café"`, "* SEARCH 3"},
		{"BODY AAECAw", "* SEARCH"},
		{"LARGER 500", "* SEARCH 2"},
		{"SMALLER 200", "* SEARCH 1"},
		{"SENTBEFORE 3-Jan-2023", "* SEARCH 1"},
		{"SENTON 3-Jan-2023", "* SEARCH 2"},
		{`SENTSINCE "3-Jan-2023"`, "* SEARCH 2 3"},
		{"SINCE 1-Jan-2000", "* SEARCH 1 2 3"},
		{"BEFORE 1-Jan-2000", "* SEARCH"},
		{"OR FLAGGED SEEN", "* SEARCH 2 3"},
		{"NOT (FLAGGED SEEN)", "* SEARCH 1 2 3"},
		{"NOT FLAGGED NOT SEEN", "* SEARCH 1"},
		{"2:*", "* SEARCH 2 3"},
		{"UID 1,3", "* SEARCH 1 3"},
		{"RECENT", "* SEARCH 1 2 3"},
		{"NEW", "* SEARCH 1 2"},
		{"OLD", "* SEARCH"},
		{"CHARSET UTF-8 SUBJECT hello", "* SEARCH 1"},
		{"DELETED", "* SEARCH"},
		{"UNDELETED UNDRAFT UNANSWERED", "* SEARCH 1 2 3"},
	} {
		c.cmd("a SEARCH "+tc.q, tc.want, "a OK SEARCH completed")
	}
	c.cmd("b UID SEARCH FLAGGED", "* SEARCH 2", "b OK SEARCH completed")
	c.cmd("c SEARCH CHARSET KOI8-R ALL", "c NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset")
	c.cmd("d SEARCH FOO", "d BAD Unknown search key FOO")
	c.cmd("e SEARCH (FLAGGED", "e BAD expected ' ', got end of line")
}

func TestSearchESearchAndSaved(t *testing.T) {
	_, c := searchServer(t)
	c.cmd("a SEARCH RETURN (MIN MAX COUNT) UNSEEN", `* ESEARCH (TAG "a") MIN 1 MAX 2 COUNT 2`, "a OK SEARCH completed")
	c.cmd("b UID SEARCH RETURN () ALL", `* ESEARCH (TAG "b") UID ALL 1:3`, "b OK SEARCH completed")
	c.cmd("c SEARCH RETURN (COUNT) DELETED", `* ESEARCH (TAG "c") COUNT 0`, "c OK SEARCH completed")
	c.cmd("d SEARCH RETURN (SAVE) OR SEEN FLAGGED", "d OK SEARCH completed")
	c.cmd("e FETCH $ UID", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)", "e OK FETCH completed")
	c.cmd("f SEARCH $ UNSEEN", "* SEARCH 2", "f OK SEARCH completed")
	c.cmd("g UID SEARCH RETURN (SAVE MIN) ALL", "g OK SEARCH completed"[:0]+`* ESEARCH (TAG "g") UID MIN 1`, "g OK SEARCH completed")
	c.cmd("h UID FETCH $ UID", "* 1 FETCH (UID 1)", "h OK FETCH completed")
}
