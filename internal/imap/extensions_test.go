package imap

// The small extensions of issue 5 over TCP: WITHIN (RFC 5032), SAVEDATE
// (RFC 8514), UNAUTHENTICATE (RFC 8437) and UTF8=ACCEPT (RFC 6855).

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// RFC 5032 §3: OLDER and YOUNGER count seconds back from now against the
// internal date.
func TestWithinOlderYounger(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(1) // internal date: now
	c := ts.login(false)
	old := time.Now().Add(-48 * time.Hour).Format("02-Jan-2006 15:04:05 -0700")
	c.send(`a APPEND INBOX "` + old + `" {` + itoa(len(sampleMsg)) + "+}")
	c.sendRaw(sampleMsg + "\r\n")
	c.expect(`re:^a OK \[APPENDUID \d+ 2\] APPEND completed$`)
	selectInbox(c, 2)
	c.cmd("b UID SEARCH YOUNGER 3600", "* SEARCH 1", "b OK SEARCH completed")
	c.cmd("c UID SEARCH OLDER 86400", "* SEARCH 2", "c OK SEARCH completed")
	c.cmd("d UID SEARCH OLDER 864000", "* SEARCH", "d OK SEARCH completed")
	c.cmd("e SEARCH YOUNGER 0", "e BAD YOUNGER needs an interval of at least 1 second")
}

// RFC 8514: the SAVEDATE fetch item is when the message came into this
// mailbox (a COPY has its own), whatever its internal date; and the
// SAVEDBEFORE/SAVEDON/SAVEDSINCE/SAVEDATESUPPORTED keys.
func TestSaveDate(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.send(`a APPEND INBOX "01-Jan-2001 10:00:00 +0000" {` + itoa(len(sampleMsg)) + "+}")
	c.sendRaw(sampleMsg + "\r\n")
	c.expect(`re:^a OK`)
	selectInbox(c, 1)
	today := time.Now().Format("2-Jan-2006")
	out := c.run("b FETCH 1 (INTERNALDATE SAVEDATE)")
	re := regexp.MustCompile(`^\* 1 FETCH \(INTERNALDATE " 1-Jan-2001 10:00:00 \+0000" SAVEDATE "([^"]+)"\)$`)
	m := re.FindStringSubmatch(out[0])
	if m == nil {
		t.Fatalf("fetch: %q", out)
	}
	saved, err := time.Parse("_2-Jan-2006 15:04:05 -0700", m[1])
	if err != nil || time.Since(saved) > time.Minute {
		t.Fatalf("save date %q: %v", m[1], err)
	}
	c.cmd("c SEARCH SAVEDON "+today, "* SEARCH 1", "c OK SEARCH completed")
	c.cmd("d SEARCH SAVEDBEFORE "+today, "* SEARCH", "d OK SEARCH completed")
	c.cmd("e SEARCH SAVEDSINCE 1-Jan-2020 BEFORE 1-Jan-2002", "* SEARCH 1", "e OK SEARCH completed")
	c.cmd("f SEARCH SAVEDATESUPPORTED", "* SEARCH 1", "f OK SEARCH completed")
	c.cmd("g COPY 1 Archive", `re:^g OK \[COPYUID`)
	selectMailbox(c, "EXAMINE", "Archive", 1)
	c.cmd("h FETCH 1 (SAVEDATE)", `re:^\* 1 FETCH \(SAVEDATE "[^"]+"\)$`, "h OK FETCH completed")
}

// RFC 8437: UNAUTHENTICATE returns to the not authenticated state, with
// what ENABLE turned on off again; another user can log in.
func TestUnauthenticate(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(1)
	c := ts.login(true)
	c.cmd("q ENABLE QRESYNC", "* ENABLED QRESYNC", "q OK ENABLE completed")
	selectInbox(c, 1)
	c.cmd("a UNAUTHENTICATE", "a OK UNAUTHENTICATE completed")
	c.cmd("b SELECT INBOX", "b BAD SELECT is not allowed in the not authenticated state")
	c.cmd("c UNAUTHENTICATE", "c BAD UNAUTHENTICATE is not allowed in the not authenticated state")
	c.cmd(`d LOGIN `+testUser+` "`+testPass+`"`, `re:^d OK \[CAPABILITY .* UNAUTHENTICATE .*\] Logged in$`)
	c.cmd("e ENABLE QRESYNC IMAP4rev2", "* ENABLED QRESYNC IMAP4rev2", "e OK ENABLE completed")
}

// RFC 6855: after ENABLE UTF8=ACCEPT, mailbox names are UTF-8 (not
// modified UTF-7) and APPEND takes a message with UTF-8 headers as
// UTF8 (~{n}).
func TestUTF8Accept(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.cmd(`a CREATE "Entw&APw-rfe"`, "a OK CREATE completed")
	msg := "From: Jörg <jörg@example.org>\r\nSubject: Grüße\r\n\r\nHallo\r\n"
	c.send(`b APPEND INBOX UTF8 (~{` + itoa(len(msg)) + "+})")
	c.expect("b BAD UTF8 needs ENABLE UTF8=ACCEPT")
	c.cmd("c ENABLE UTF8=ACCEPT", "* ENABLED UTF8=ACCEPT", "c OK ENABLE completed")
	c.cmd(`d LIST "" "Entw*"`, `* LIST (\HasNoChildren) "/" "Entwürfe"`, "d OK LIST completed")
	c.cmd(`e STATUS "Entwürfe" (MESSAGES)`, `* STATUS "Entwürfe" (MESSAGES 0)`, "e OK STATUS completed")
	c.send(`f APPEND "Entwürfe" UTF8 (~{` + itoa(len(msg)) + "+}")
	c.sendRaw(msg + ")\r\n")
	c.expect(`re:^f OK \[APPENDUID \d+ 1\] APPEND completed$`)
	selectMailbox(c, "SELECT", `"Entwürfe"`, 1)
	out := c.run("g FETCH 1 (ENVELOPE)")
	if !strings.Contains(out[0], `"Grüße"`) {
		t.Fatalf("envelope: %q", out[0])
	}
}

// RFC 3502: several messages in one APPEND are stored together, with one
// APPENDUID; one refused message refuses them all.
func TestMultiAppend(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	m1 := "Subject: one\r\n\r\n1\r\n"
	m2 := "Subject: two\r\n\r\n2\r\n"
	// RFC 3502 §6.3.11's example shape, synchronizing literals.
	c.cmd(`A003 APPEND Drafts (\Seen) {`+itoa(len(m1))+`}`, "+ Ready for literal data")
	c.cmd(m1+` (\Draft) "14-Jul-2023 09:30:00 +0200" {`+itoa(len(m2))+`}`, "+ Ready for literal data")
	c.cmd(m2, `re:^A003 OK \[APPENDUID \d+ 1:2\] APPEND completed$`)
	selectMailbox(c, "EXAMINE", "Drafts", 2)
	c.cmd("b FETCH 1:2 (FLAGS BODY[HEADER.FIELDS (SUBJECT)])",
		"* 1 FETCH (FLAGS (\\Seen \\Recent) BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: one\r\n\r\n)",
		"* 2 FETCH (FLAGS (\\Draft \\Recent) BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: two\r\n\r\n)",
		"b OK FETCH completed")
	// The second message is too large: neither is stored.
	big := ts.srv.opts.AppendLimit + 1
	c.send(`c APPEND Drafts {` + itoa(len(m1)) + "+}\r\n" + m1 + " {" + itoa(int(big)) + "}")
	c.expect("c NO [TOOBIG] Message larger than APPENDLIMIT 64000000")
	c.cmd("d STATUS Drafts (MESSAGES)", `* STATUS "Drafts" (MESSAGES 2)`, "d OK STATUS completed")
}

// RFC 8508: REPLACE stores the new message and expunges the old in one
// step; the client gets APPENDUID, the new EXISTS, then the EXPUNGE.
func TestReplace(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	for i := 1; i <= 3; i++ {
		m := "Subject: draft " + itoa(i) + "\r\n\r\nx\r\n"
		c.send(`a APPEND Drafts {` + itoa(len(m)) + "+}\r\n" + m)
		c.expect(`re:^a OK`)
	}
	selectMailbox(c, "SELECT", "Drafts", 3)
	o := ts.login(false)
	selectMailbox(o, "SELECT", "Drafts", 3)
	m := "Subject: draft 2, edited\r\n\r\nxy\r\n"
	c.cmd(`A003 REPLACE 2 Drafts (\Seen \Draft) {`+itoa(len(m))+`}`, "+ Ready for literal data")
	c.cmd(m, `re:^\* OK \[APPENDUID \d+ 4\] Replacement Message ready$`, "* 4 EXISTS", "* 4 RECENT", "* 2 EXPUNGE", "A003 OK REPLACE completed")
	c.cmd("b FETCH 1:* (UID FLAGS)", `* 1 FETCH (UID 1 FLAGS (\Recent))`, `* 2 FETCH (UID 3 FLAGS (\Recent))`, `* 3 FETCH (UID 4 FLAGS (\Seen \Draft \Recent))`, "b OK FETCH completed")
	o.cmd("n NOOP", "* 2 EXPUNGE", "* 3 EXISTS", "* 0 RECENT", "n OK NOOP completed")
	// Into another mailbox, by UID, with QRESYNC.
	c.cmd("q ENABLE QRESYNC", "re:^\\* OK \\[HIGHESTMODSEQ \\d+\\] Highest$", "* ENABLED QRESYNC", "q OK ENABLE completed")
	c.send(`c UID REPLACE 4 Sent {` + itoa(len(m)) + "+}\r\n" + m)
	c.expect(`re:^\* OK \[APPENDUID \d+ 1\] Replacement Message ready$`, "* VANISHED 4", "c OK REPLACE completed")
	c.cmd("d UID REPLACE 99 Sent {1}", "d NO [NONEXISTENT] No message with UID 99")
	c.cmd("e REPLACE 1 Nope {1}", "e NO [TRYCREATE] No such mailbox")
	c.cmd("f STATUS Sent (MESSAGES)", `* STATUS "Sent" (MESSAGES 1)`, "f OK STATUS completed")
}
