package imap

import (
	"testing"
)

func TestStoreFlags(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	ts.deliver(sampleMsg)
	c := ts.login(false)
	selectInbox(c, 2)
	// Both messages are \Recent in this session, the first to select them.
	c.cmd(`a STORE 1:2 +FLAGS (\Seen $Label1)`, `* 1 FETCH (FLAGS (\Seen $Label1 \Recent))`, `* 2 FETCH (FLAGS (\Seen $Label1 \Recent))`, "a OK STORE completed")
	c.cmd(`b STORE 1 -FLAGS ($label1)`, `* 1 FETCH (FLAGS (\Seen \Recent))`, "b OK STORE completed")
	c.cmd(`c STORE 2 FLAGS (\Answered)`, `* 2 FETCH (FLAGS (\Answered \Recent))`, "c OK STORE completed")
	c.cmd(`d UID STORE 2 +FLAGS.SILENT \Flagged \Draft`, "d OK STORE completed")
	c.cmd(`e UID STORE 1:2 +FLAGS (\Answered)`, `* 1 FETCH (UID 1 FLAGS (\Seen \Answered \Recent))`, `* 2 FETCH (UID 2 FLAGS (\Answered \Flagged \Draft \Recent))`, "e OK STORE completed")
	c.cmd(`f STORE 1 +FLAGS (\Recent)`, `* 1 FETCH (FLAGS (\Seen \Answered \Recent))`, "f OK STORE completed")
	c.cmd(`g STORE 1 FLAGS`, "g BAD expected ' ', got end of line")
	c.cmd(`h STORE 1 XFLAGS (\Seen)`, "h BAD Expected FLAGS, +FLAGS or -FLAGS")
	c.cmd(`i STORE 3 +FLAGS (\Seen)`, "i BAD Invalid message sequence number (mailbox has 2 messages)")
	c.cmd(`j UID STORE 9 +FLAGS (\Seen)`, "j OK STORE completed")
	selectMailbox(c, "EXAMINE", "INBOX", 2)
	c.cmd(`k STORE 1 +FLAGS (\Deleted)`, "k NO [READ-ONLY] Mailbox is read-only")
}

func TestCopyAndMove(t *testing.T) {
	ts := newTestServer(t)
	for range 3 {
		ts.deliver(sampleMsg)
	}
	c := ts.login(false)
	selectInbox(c, 3)
	c.cmd(`a STORE 2 +FLAGS.SILENT (\Flagged)`, "a OK STORE completed")
	c.cmd("b COPY 1:2 Archive", `re:^b OK \[COPYUID \d+ 1:2 1:2\] COPY completed$`)
	c.cmd("c UID COPY 3 Archive", `re:^c OK \[COPYUID \d+ 3 3\] COPY completed$`)
	c.cmd("d COPY 1 Nope", "d NO [TRYCREATE] No such mailbox")
	c.cmd("e UID MOVE 1,3 Trash", `re:^\* OK \[COPYUID \d+ 1,3 1:2\] Moved$`, "* 1 EXPUNGE", "* 2 EXPUNGE", "e OK MOVE completed")
	c.cmd("f FETCH 1 (UID FLAGS)", `* 1 FETCH (UID 2 FLAGS (\Flagged \Recent))`, "f OK FETCH completed")
	c.cmd("g COPY 1 INBOX", "* 2 EXISTS", "* 2 RECENT", `re:^g OK \[COPYUID \d+ 2 4\] COPY completed$`)
	c.cmd("h UID MOVE 99 Trash", "h OK MOVE completed")
	c.cmd("i STATUS Archive (MESSAGES)", `* STATUS "Archive" (MESSAGES 3)`, "i OK STATUS completed")
	selectMailbox(c, "SELECT", "Archive", 3)
	c.cmd("j FETCH 2 FLAGS", `* 2 FETCH (FLAGS (\Flagged \Recent))`, "j OK FETCH completed")
}

func TestExpungeAndClose(t *testing.T) {
	ts := newTestServer(t)
	for range 5 {
		ts.deliver(sampleMsg)
	}
	c := ts.login(false)
	selectInbox(c, 5)
	c.cmd(`a STORE 2,4:5 +FLAGS.SILENT (\Deleted)`, "a OK STORE completed")
	c.cmd("b UID EXPUNGE 4", "* 4 EXPUNGE", "b OK EXPUNGE completed")
	c.cmd("c EXPUNGE", "* 2 EXPUNGE", "* 3 EXPUNGE", "c OK EXPUNGE completed")
	c.cmd("d FETCH 1:* UID", "* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)", "d OK FETCH completed")
	c.cmd(`e STORE 1 +FLAGS.SILENT (\Deleted)`, "e OK STORE completed")
	c.cmd("f CLOSE", "f OK CLOSE completed")
	c.cmd("g STATUS INBOX (MESSAGES UIDNEXT)", `* STATUS "INBOX" (MESSAGES 1 UIDNEXT 6)`, "g OK STATUS completed")
	selectInbox(c, 1)
	c.cmd(`h STORE 1 +FLAGS.SILENT (\Deleted)`, "h OK STORE completed")
	c.cmd("i UNSELECT", "i OK UNSELECT completed")
	c.cmd("j STATUS INBOX (MESSAGES DELETED)", `* STATUS "INBOX" (MESSAGES 1 DELETED 1)`, "j OK STATUS completed")
	selectMailbox(c, "EXAMINE", "INBOX", 1)
	c.cmd("k EXPUNGE", "k NO [READ-ONLY] Mailbox is read-only")
	c.cmd("l CLOSE", "l OK CLOSE completed")
	c.cmd("m STATUS INBOX (MESSAGES)", `* STATUS "INBOX" (MESSAGES 1)`, "m OK STATUS completed")
}
