package imap

import (
	"context"
	"strings"
	"testing"
	"time"

	"loft/internal/store"
)

// APPEND to Sent and Drafts keeps flags, internal date and the exact bytes.
func TestAppendSentDraftsKeepsFlagsDateBytes(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	draft := "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: draft \xc3\xa9\r\n\r\nnot yet\r\n  trailing spaces  \r\n"
	c.cmd(`a APPEND Drafts (\Draft $Todo) "14-Jul-2023 09:30:00 +0200" {`+itoa(len(draft))+`}`, "+ Ready for literal data")
	c.cmd(draft, `re:^a OK \[APPENDUID \d+ 1\] APPEND completed$`)
	sent := "From: alice@example.org\r\nSubject: sent\r\n\r\nbody\r\n"
	c.send(`b APPEND Sent (\Seen) {` + itoa(len(sent)) + "+}\r\n" + sent)
	c.expect(`re:^b OK \[APPENDUID \d+ 1\] APPEND completed$`)

	selectMailbox(c, "SELECT", "Drafts", 1)
	c.cmd("d FETCH 1 (FLAGS INTERNALDATE BODY.PEEK[])",
		`* 1 FETCH (FLAGS (\Draft $Todo \Recent) INTERNALDATE "`+time.Date(2023, 7, 14, 7, 30, 0, 0, time.UTC).Local().Format("_2-Jan-2006 15:04:05 -0700")+
			`" BODY[] {`+itoa(len(draft))+"}\r\n"+draft+")",
		"d OK FETCH completed")
	selectMailbox(c, "EXAMINE", "Sent", 1)
	c.cmd("f FETCH 1 (FLAGS BODY[])", `* 1 FETCH (FLAGS (\Seen \Recent) BODY[] {`+itoa(len(sent))+"}\r\n"+sent+")", "f OK FETCH completed")
}

func TestAppendErrors(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.cmd("a APPEND Nope {5}", "a NO [TRYCREATE] No such mailbox")
	c.send("b APPEND Nope {5+}\r\nhello")
	c.expect("b NO [TRYCREATE] No such mailbox")
	c.cmd(`c APPEND INBOX "bad date" {5}`, `c BAD bad date-time "bad date"`)
	c.cmd("d APPEND INBOX (\\Seen", "d BAD expected ' ', got end of line")
	c.cmd("e NOOP", "e OK NOOP completed")
}

func TestAppendOverQuota(t *testing.T) {
	ts := newTestServer(t)
	q := int64(1000)
	if err := ts.st.SetQuota(context.Background(), testUser, &q); err != nil {
		t.Fatal(err)
	}
	c := ts.login(false)
	c.cmd("a APPEND INBOX {2000}", "a NO [OVERQUOTA] Quota exceeded")
	msg := strings.Repeat("x", 600)
	c.send("b APPEND INBOX {600+}\r\n" + msg)
	c.expect(`re:^b OK \[APPENDUID \d+ 1\] APPEND completed$`)
	c.send("c APPEND INBOX {600+}\r\n" + msg)
	c.expect("c NO [OVERQUOTA] Quota exceeded")
	c.cmd("d GETQUOTAROOT INBOX", `* QUOTAROOT "INBOX" ""`, `* QUOTA "" (STORAGE 1 0)`, "d OK GETQUOTAROOT completed")
	c.cmd(`e GETQUOTA ""`, `* QUOTA "" (STORAGE 1 0)`, "e OK GETQUOTA completed")
	c.cmd(`f GETQUOTA "other"`, "f NO [NONEXISTENT] No such quota root")
	c.cmd(`g SETQUOTA "" (STORAGE 10)`, "g NO [NOPERM] Quotas are set by the administrator")
	selectInbox(c, 1)
	c.cmd("h COPY 1 Archive", "h NO [OVERQUOTA] Quota exceeded")
}

// APPEND into the selected mailbox is announced with EXISTS; literal8
// (BINARY) content is accepted.
func TestAppendToSelectedAndLiteral8(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(true)
	selectInbox(c, 0)
	c.send("a APPEND INBOX ~{12+}\r\nSubject: x\r\n")
	c.expect("* 1 EXISTS", `re:^a OK \[APPENDUID \d+ 1\] APPEND completed$`)
	msgs, err := ts.st.Messages(context.Background(), ts.acct.ID, inboxID(t, ts))
	if err != nil || len(msgs) != 1 || msgs[0].Size != 12 {
		t.Fatalf("stored: %+v %v", msgs, err)
	}
}

// A client that goes away in the middle of a literal stores nothing.
func TestAppendCutShort(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.sendRaw("a APPEND INBOX {100+}\r\nSubject: cut\r\n")
	c.conn.Close()
	time.Sleep(200 * time.Millisecond)
	mb, err := ts.st.Mailbox(context.Background(), ts.acct.ID, "INBOX")
	if err != nil || mb.Messages != 0 {
		t.Fatalf("INBOX after cut APPEND: %+v %v", mb, err)
	}
	if rep, err := ts.st.Check(context.Background()); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check: %+v %v", rep, err)
	}
	_ = store.Unlimited
}
