package imap

// NOTIFY (RFC 5465) over TCP: the RFC's examples with Loft's mailboxes,
// events pushed while no command runs, and the errors it defines.

import (
	"context"
	"testing"
	"time"
)

// RFC 5465 §3.1 and §6: the selected mailbox's new messages with the
// FETCH items asked for, and STATUS for other mailboxes of a subtree, both
// pushed while the client waits; SET STATUS reports those at once.
func TestNotifySelectedAndSubtree(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(1)
	c := ts.login(false)
	c.cmd("c1 CREATE Lists/Lemonade", "c1 OK CREATE completed")
	selectInbox(c, 1)
	c.cmd("a NOTIFY SET STATUS (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))",
		`* STATUS "Lists" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY `+itoa(int(mailboxUIDValidity(t, ts, "Lists")))+` UNSEEN 0)`,
		`* STATUS "Lists/Lemonade" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY `+itoa(int(mailboxUIDValidity(t, ts, "Lists/Lemonade")))+` UNSEEN 0)`,
		"a OK NOTIFY completed")

	// A delivery to INBOX: EXISTS and the FETCH, with no command running.
	ts.deliver(sampleMsg)
	c.expectWithin(2*time.Second, "* 2 EXISTS", "* 2 RECENT")
	c.expectWithin(2*time.Second, "* 2 FETCH (UID 2 BODY[HEADER.FIELDS (from to subject)] {70}\r\n"+
		"From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: Hello\r\n\r\n)")

	// Another session appends to Lists/Lemonade: a STATUS.
	o := ts.login(false)
	o.send("o1 APPEND Lists/Lemonade {" + itoa(len(sampleMsg)) + "+}")
	o.sendRaw(sampleMsg + "\r\n")
	o.expect(`re:^o1 OK \[APPENDUID \d+ 1\] APPEND completed$`)
	c.expectWithin(2*time.Second, `re:^\* STATUS "Lists/Lemonade" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)$`)

	// An expunge in the selected mailbox, pushed too.
	if _, err := ts.st.Expunge(context.Background(), ts.acct.ID, inboxID(t, ts), []uint32{1}); err != nil {
		t.Fatal(err)
	}
	c.expectWithin(2*time.Second, "* 1 EXPUNGE")
	// Archive is not in the subtree: nothing.
	o.send("o2 APPEND Archive {" + itoa(len(sampleMsg)) + "+}")
	o.sendRaw(sampleMsg + "\r\n")
	o.expect(`re:^o2 OK`)
	c.cmd("n NOOP", "n OK NOOP completed")

	// NOTIFY NONE: back to base IMAP; the next delivery waits for a command.
	c.cmd("b NOTIFY NONE", "b OK NOTIFY completed")
	ts.deliver(sampleMsg)
	c.expectNothing(200 * time.Millisecond)
	c.cmd("d NOOP", "* 2 EXISTS", "* 2 RECENT", "d OK NOOP completed")
}

// RFC 5465 §5.4: MailboxName events are LIST responses; with
// selected-delayed, the selected mailbox's changes wait for a command.
func TestNotifyMailboxNameAndDelayed(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(1)
	c := ts.login(true)
	selectInbox(c, 1)
	c.cmd("a NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) (personal (MailboxName SubscriptionChange))", "a OK NOTIFY completed")
	o := ts.login(true)
	o.cmd(`o1 CREATE "Projekte/Übung"`, "o1 OK CREATE completed")
	c.expectWithin(2*time.Second, `* LIST () "/" "Projekte"`)
	c.expectWithin(2*time.Second, `* LIST () "/" "Projekte/Übung"`)
	o.cmd(`o2 RENAME "Projekte/Übung" Projekte/Done`, "o2 OK RENAME completed")
	c.expectWithin(2*time.Second, `* LIST () "/" "Projekte/Done" ("OLDNAME" ("Projekte/Übung"))`)
	o.cmd("o3 DELETE Projekte/Done", "o3 OK DELETE completed")
	c.expectWithin(2*time.Second, `* LIST (\NonExistent) "/" "Projekte/Done"`)
	ts.deliver(sampleMsg)
	c.expectNothing(200 * time.Millisecond)
	c.cmd("n NOOP", "* 2 EXISTS", "n OK NOOP completed")
}

// RFC 5465 §5.5: SubscriptionChange events are LIST responses with or
// without \Subscribed; a client that did not ask for them gets none.
func TestNotifySubscriptionChange(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(true)
	c.cmd("a NOTIFY SET (personal (SubscriptionChange))", "a OK NOTIFY completed")
	m := ts.login(true)
	m.cmd("m NOTIFY SET (personal (MailboxName))", "m OK NOTIFY completed")
	o := ts.login(true)
	o.cmd("o1 CREATE Lists", "o1 OK CREATE completed")
	m.expectWithin(2*time.Second, `* LIST () "/" "Lists"`)
	o.cmd("o2 SUBSCRIBE Lists", "o2 OK SUBSCRIBE completed")
	c.expectWithin(2*time.Second, `* LIST (\Subscribed) "/" "Lists"`)
	o.cmd("o3 UNSUBSCRIBE Lists", "o3 OK UNSUBSCRIBE completed")
	c.expectWithin(2*time.Second, `* LIST () "/" "Lists"`)
	c.expectNothing(200 * time.Millisecond) // nothing for the CREATE
	m.expectNothing(200 * time.Millisecond) // nothing for (UN)SUBSCRIBE
}

// RFC 5465 §5 and §8: BADEVENT for unsupported events, BAD for event
// groups the grammar or the rules refuse.
func TestNotifyErrors(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.cmd("a NOTIFY SET (personal (MailboxName SubscriptionChange MailboxMetadataChange))",
		"a NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] Unsupported event MAILBOXMETADATACHANGE")
	c.cmd("b NOTIFY SET (selected (MessageNew))", "b BAD MessageNew and MessageExpunge go together")
	c.cmd("c NOTIFY SET (inboxes (FlagChange))", "c BAD FlagChange needs MessageNew and MessageExpunge")
	c.cmd("d NOTIFY SET (selected (MailboxName))", "d BAD The selected mailbox takes message events only")
	c.cmd("e NOTIFY SET (selected NONE) (selected-delayed NONE)", "e BAD Only one selected mailbox group")
	c.cmd("f NOTIFY SET (elsewhere NONE)", "f BAD Unknown mailbox specifier elsewhere")
	c.cmd("g NOTIFY SET (selected (MessageNew (BODY[]) MessageExpunge))", `g BAD MessageNew takes no FETCH item that sets \Seen`)
	c.cmd("h NOTIFY SET (inboxes (MessageNew MessageExpunge FlagChange)) (mailboxes (Sent Drafts) NONE)", "h OK NOTIFY completed")
}

func mailboxUIDValidity(t *testing.T, ts *testServer, name string) uint32 {
	t.Helper()
	mb, err := ts.st.Mailbox(context.Background(), ts.acct.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb.UIDValidity
}
