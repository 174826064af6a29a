package imap

import (
	"testing"
)

func TestListSpecialUseAndChildren(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.cmd("a CREATE Work/2024/Q1", "a OK CREATE completed")
	c.cmd(`b LIST "" *`,
		`* LIST (\HasNoChildren) "/" "INBOX"`,
		`* LIST (\HasNoChildren \Archive) "/" "Archive"`,
		`* LIST (\HasNoChildren \Drafts) "/" "Drafts"`,
		`* LIST (\HasNoChildren \Junk) "/" "Junk"`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent"`,
		`* LIST (\HasNoChildren \Trash) "/" "Trash"`,
		`* LIST (\HasChildren) "/" "Work"`,
		`* LIST (\HasChildren) "/" "Work/2024"`,
		`* LIST (\HasNoChildren) "/" "Work/2024/Q1"`,
		"b OK LIST completed")
	c.cmd(`c LIST "" %`,
		`* LIST (\HasNoChildren) "/" "INBOX"`,
		`* LIST (\HasNoChildren \Archive) "/" "Archive"`,
		`* LIST (\HasNoChildren \Drafts) "/" "Drafts"`,
		`* LIST (\HasNoChildren \Junk) "/" "Junk"`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent"`,
		`* LIST (\HasNoChildren \Trash) "/" "Trash"`,
		`* LIST (\HasChildren) "/" "Work"`,
		"c OK LIST completed")
	c.cmd(`d LIST "Work/" %`, `* LIST (\HasChildren) "/" "Work/2024"`, "d OK LIST completed")
	c.cmd(`e LIST "" inbox`, `* LIST (\HasNoChildren) "/" "INBOX"`, "e OK LIST completed")
	c.cmd(`f LIST "" ""`, `* LIST (\Noselect) "/" ""`, "f OK LIST completed")
	c.cmd(`g LIST (SPECIAL-USE) "" * RETURN (SUBSCRIBED)`,
		`* LIST (\HasNoChildren \Subscribed \Archive) "/" "Archive"`,
		`* LIST (\HasNoChildren \Subscribed \Drafts) "/" "Drafts"`,
		`* LIST (\HasNoChildren \Subscribed \Junk) "/" "Junk"`,
		`* LIST (\HasNoChildren \Subscribed \Sent) "/" "Sent"`,
		`* LIST (\HasNoChildren \Subscribed \Trash) "/" "Trash"`,
		"g OK LIST completed")
	c.cmd(`h LIST "" (INBOX Sent) RETURN (STATUS (MESSAGES UIDNEXT SIZE))`,
		`* LIST (\HasNoChildren) "/" "INBOX"`,
		`* STATUS "INBOX" (MESSAGES 0 UIDNEXT 1 SIZE 0)`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent"`,
		`* STATUS "Sent" (MESSAGES 0 UIDNEXT 1 SIZE 0)`,
		"h OK LIST completed")
}

// A deleted parent with children stays as a \Noselect name; DELETE of
// such a name fails; the children survive (RFC 9051 §6.3.4).
func TestDeleteWithChildren(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.cmd("a CREATE Work/Old/", "a OK CREATE completed")
	c.cmd("b DELETE Work", "b OK DELETE completed")
	c.cmd(`c LIST "" Work%`, `* LIST (\Noselect \HasChildren) "/" "Work"`, "c OK LIST completed")
	c.cmd(`d LIST "" Work*`, `* LIST (\HasNoChildren) "/" "Work/Old"`, "d OK LIST completed")
	c.cmd("e DELETE Work", "e NO [NONEXISTENT] No such mailbox")
	c.cmd("f SELECT Work", "f NO [NONEXISTENT] No such mailbox")
	c.cmd("g DELETE INBOX", "g NO [CANNOT] INBOX cannot be deleted")
	c.cmd("h CREATE Work", "h OK CREATE completed")
	c.cmd("i CREATE Work", "i NO [ALREADYEXISTS] Mailbox already exists")
	c.cmd("j CREATE INBOX", "j NO [ALREADYEXISTS] INBOX always exists")
	e2 := ts.login(true)
	e2.cmd(`k LIST "" %`,
		`* LIST (\HasNoChildren) "/" "INBOX"`,
		`* LIST (\HasNoChildren \Archive) "/" "Archive"`,
		`* LIST (\HasNoChildren \Drafts) "/" "Drafts"`,
		`* LIST (\HasNoChildren \Junk) "/" "Junk"`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent"`,
		`* LIST (\HasNoChildren \Trash) "/" "Trash"`,
		`* LIST (\HasChildren) "/" "Work"`,
		"k OK LIST completed")
}

func TestRenameCarriesChildrenAndInboxRule(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	ts.deliver(sampleMsg)
	c := ts.login(false)
	c.cmd("a CREATE Projects/Loft", "a OK CREATE completed")
	c.cmd("b RENAME Projects Archive/Projects", "b OK RENAME completed")
	c.cmd(`c LIST "" Archive*`,
		`* LIST (\HasChildren \Archive) "/" "Archive"`,
		`* LIST (\HasChildren) "/" "Archive/Projects"`,
		`* LIST (\HasNoChildren) "/" "Archive/Projects/Loft"`,
		"c OK LIST completed")
	c.cmd("d RENAME Nope Other", "d NO [NONEXISTENT] No such mailbox")
	c.cmd("e RENAME Sent Drafts", "e NO [ALREADYEXISTS] Mailbox already exists")
	c.cmd("f RENAME Sent Sent/Sub", "f NO [CANNOT] Invalid mailbox name")
	// RENAME INBOX moves its messages to the new mailbox; INBOX stays, empty.
	c.cmd("g RENAME INBOX Old-Inbox", "g OK RENAME completed")
	c.cmd("h STATUS INBOX (MESSAGES)", `* STATUS "INBOX" (MESSAGES 0)`, "h OK STATUS completed")
	c.cmd("i STATUS Old-Inbox (MESSAGES UIDNEXT)", `* STATUS "Old-Inbox" (MESSAGES 2 UIDNEXT 3)`, "i OK STATUS completed")
}

// IMAP4rev1 clients see modified UTF-7 names, IMAP4rev2 clients UTF-8.
func TestMailboxNameEncodingRev1Rev2(t *testing.T) {
	ts := newTestServer(t)
	c1 := ts.login(false)
	c1.cmd("a CREATE Entw&APw-rfe", "a OK CREATE completed")
	c1.cmd(`b LIST "" Entw*`, `* LIST (\HasNoChildren) "/" "Entw&APw-rfe"`, "b OK LIST completed")
	c1.cmd("c CREATE &Jjo", "c BAD invalid modified UTF-7 in mailbox name")
	c2 := ts.login(true)
	c2.cmd(`d LIST "" Entw*`, `* LIST (\HasNoChildren) "/" "Entwürfe"`, "d OK LIST completed")
	c2.cmd(`e STATUS "Entwürfe" (MESSAGES)`, `* STATUS "Entwürfe" (MESSAGES 0)`, "e OK STATUS completed")
}

// Names cannot leave the account: there is no path, user or namespace in
// a name, only a key within this account's mailboxes.
func TestMailboxNamesStayInAccount(t *testing.T) {
	ts := newTestServer(t)
	if _, err := ts.st.CreateAccount(t.Context(), "bob@example.org", testHash, nil); err != nil {
		t.Fatal(err)
	}
	c := ts.login(false)
	for _, name := range []string{"../bob@example.org/INBOX", "/INBOX", "bob@example.org/INBOX", "~bob/INBOX", "#shared/x", "..", "INBOX/../Sent"} {
		res := c.run("a SELECT " + quoteArg(name))
		if last := res[len(res)-1]; last != "a NO [NONEXISTENT] No such mailbox" {
			t.Errorf("SELECT %q: %q", name, last)
		}
	}
	c.cmd(`b CREATE "/etc"`, "b NO [CANNOT] Empty hierarchy level in mailbox name")
	c.cmd(`c CREATE "a//b"`, "c NO [CANNOT] Empty hierarchy level in mailbox name")
	c.cmd(`d CREATE "../x"`, "d OK CREATE completed") // just a name of this account
	c.cmd(`e LIST "" ..*`, `* LIST (\HasChildren) "/" ".."`, `* LIST (\HasNoChildren) "/" "../x"`, "e OK LIST completed")
	bob := ts.dial()
	bob.cmd(`f LOGIN bob@example.org "`+testPass+`"`, `re:^f OK .*`)
	bob.cmd(`g LIST "" ..*`, "g OK LIST completed")
}

func quoteArg(s string) string { return `"` + s + `"` }

func TestSubscribeAndLsub(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.cmd("a UNSUBSCRIBE Junk", "a OK UNSUBSCRIBE completed")
	c.cmd("b SUBSCRIBE Nope", "b NO [NONEXISTENT] No such mailbox")
	c.cmd(`c LSUB "" J*`, "c OK LSUB completed")
	c.cmd(`d LSUB "" T*`, `* LSUB () "/" "Trash"`, "d OK LSUB completed")
	c.cmd(`e LIST (SUBSCRIBED) "" J*`, "e OK LIST completed")
	c.cmd("f SUBSCRIBE Junk", "f OK SUBSCRIBE completed")
	c.cmd(`g LIST (SUBSCRIBED) "" J*`, `* LIST (\HasNoChildren \Subscribed \Junk) "/" "Junk"`, "g OK LIST completed")
}

func TestStatusItems(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	ts.deliver(sampleMsg)
	c := ts.login(false)
	c.cmd("a SELECT INBOX", `re:.*`, `re:.*`, `re:.*`, `re:.*`, `re:.*`, `re:.*`, `re:.*`, `re:.*`, "a OK [READ-WRITE] SELECT completed")
	c.cmd(`b STORE 1 +FLAGS.SILENT (\Seen \Deleted)`, "b OK STORE completed")
	size := int64(2 * len(sampleMsg))
	c.cmd("c STATUS INBOX (MESSAGES UNSEEN DELETED SIZE RECENT)",
		`* STATUS "INBOX" (MESSAGES 2 UNSEEN 1 DELETED 1 SIZE `+itoa(int(size))+` RECENT 2)`, "c OK STATUS completed")
	c.cmd("d STATUS Nope (MESSAGES)", "d NO [NONEXISTENT] No such mailbox")
}

func TestCreateSpecialUse(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.cmd(`a CREATE MySent (USE (\Sent))`, "a OK CREATE completed")
	c.cmd(`b CREATE Everything (USE (\All))`, `b NO [USEATTR] Unsupported special-use attribute \All`)
	c.cmd(`c LIST "" MySent`, `* LIST (\HasNoChildren \Sent) "/" "MySent"`, "c OK LIST completed")
}
