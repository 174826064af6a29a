package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func names(t *testing.T, s *Store, a *Account) []string {
	t.Helper()
	mbs, err := s.Mailboxes(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range mbs {
		out = append(out, m.Name)
	}
	return out
}

func TestRenameMailboxMovesChildren(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@x", nil)
	ctx := context.Background()
	for _, n := range []string{"work", "work/2024", "work/2024/q1", "workshop"} {
		if _, err := s.CreateMailbox(ctx, a.ID, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	sub := s.Subscribe(a.ID)
	defer sub.Close()
	if err := s.RenameMailbox(ctx, a.ID, "work", "old/work"); err != nil {
		t.Fatal(err)
	}
	got := names(t, s, a)
	for _, want := range []string{"old/work", "old/work/2024", "old/work/2024/q1", "workshop"} {
		if !slices.Contains(got, want) {
			t.Errorf("after rename: %v lacks %q", got, want)
		}
	}
	if slices.Contains(got, "work") {
		t.Errorf("after rename: %v still has work", got)
	}
	if n := len(sub.Changes()); n != 3 {
		t.Errorf("%d changes, want 3 renames", n)
	}
	if err := s.RenameMailbox(ctx, a.ID, "old/work", "old/work/x"); !errors.Is(err, ErrBadName) {
		t.Errorf("rename into itself: %v", err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "workshop", "Sent"); !errors.Is(err, ErrMailboxExists) {
		t.Errorf("rename onto Sent: %v", err)
	}
}

func TestRenameInboxMovesMessages(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@x", nil)
	ctx := context.Background()
	deliver(t, s, "Subject: 1\r\n\r\none\r\n", "a@x")
	deliver(t, s, "Subject: 2\r\n\r\ntwo\r\n", "a@x")
	if err := s.RenameMailbox(ctx, a.ID, "inbox", "Old"); err != nil {
		t.Fatal(err)
	}
	in := inbox(t, s, a)
	if in.Messages != 0 {
		t.Errorf("INBOX has %d messages after rename", in.Messages)
	}
	old, err := s.Mailbox(ctx, a.ID, "Old")
	if err != nil {
		t.Fatal(err)
	}
	if old.Messages != 2 {
		t.Errorf("Old has %d messages, want 2", old.Messages)
	}
	acct, _ := s.AccountByID(ctx, a.ID)
	if acct.Messages != 2 {
		t.Errorf("account counts %d messages, want 2", acct.Messages)
	}
}

func TestCopyMoveDelete(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@x", nil)
	ctx := context.Background()
	deliver(t, s, "Subject: 1\r\n\r\none\r\n", "a@x")
	deliver(t, s, "Subject: 2\r\n\r\ntwo\r\n", "a@x")
	in := inbox(t, s, a)
	res, err := s.CopyMessages(ctx, a.ID, in.ID, []uint32{2, 1, 7}, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.SrcUIDs, []uint32{1, 2}) || !slices.Equal(res.DstUIDs, []uint32{1, 2}) {
		t.Errorf("copy: %+v", res)
	}
	acct, _ := s.AccountByID(ctx, a.ID)
	if acct.Messages != 4 || acct.Usage != 2*in.Size {
		t.Errorf("after copy: %d messages, usage %d (inbox size %d)", acct.Messages, acct.Usage, in.Size)
	}
	mv, err := s.MoveMessages(ctx, a.ID, in.ID, []uint32{1}, "Trash")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mv.DstUIDs, []uint32{1}) {
		t.Errorf("move: %+v", mv)
	}
	uids, _ := s.UIDs(ctx, a.ID, in.ID)
	if !slices.Equal(uids, []uint32{2}) {
		t.Errorf("inbox uids after move: %v", uids)
	}
	if _, err := s.CopyMessages(ctx, a.ID, in.ID, []uint32{2}, "Nope"); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("copy to missing: %v", err)
	}
	if err := s.DeleteMailbox(ctx, a.ID, "Archive"); err != nil {
		t.Fatal(err)
	}
	acct, _ = s.AccountByID(ctx, a.ID)
	if acct.Messages != 2 {
		t.Errorf("after delete: %d messages, want 2", acct.Messages)
	}
	if err := s.DeleteMailbox(ctx, a.ID, "INBOX"); !errors.Is(err, ErrInboxDelete) {
		t.Errorf("delete INBOX: %v", err)
	}
	checkClean(t, s)
}

func TestCopyOverQuota(t *testing.T) {
	s := openTest(t, Unlimited)
	q := int64(100)
	a := addAccount(t, s, "a@x", &q)
	ctx := context.Background()
	deliver(t, s, "Subject: 1\r\n\r\n0123456789012345678901234567890123456789\r\n", "a@x")
	in := inbox(t, s, a)
	if _, err := s.CopyMessages(ctx, a.ID, in.ID, []uint32{1}, "Archive"); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("copy over quota: %v", err)
	}
	if _, err := s.MoveMessages(ctx, a.ID, in.ID, []uint32{1}, "Archive"); err != nil {
		t.Fatalf("move at full quota: %v", err)
	}
}

func TestStatsAndRanges(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@x", nil)
	ctx := context.Background()
	for range 5 {
		deliver(t, s, "Subject: x\r\n\r\nx\r\n", "a@x")
	}
	in := inbox(t, s, a)
	if _, err := s.StoreFlags(ctx, a.ID, in.ID, []uint32{1, 2}, FlagsAdd, []string{`\Seen`, "$Work"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, a.ID, in.ID, []uint32{5}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx, a.ID, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unseen != 3 || st.Deleted != 1 || st.FirstUnseen != 3 || !slices.Equal(st.Keywords, []string{"$Work"}) {
		t.Errorf("stats %+v", st)
	}
	msgs, err := s.MessagesInRanges(ctx, a.ID, in.ID, []UIDRange{{4, 9}, {1, 1}, {1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, m := range msgs {
		got = append(got, m.UID)
	}
	if !slices.Equal(got, []uint32{1, 2, 4, 5}) {
		t.Errorf("ranges gave %v", got)
	}
}

// TestMailboxCountsFollowEveryChange: the counts STATUS reads from a
// mailbox's row (migration 7's triggers) follow delivery, APPEND, flag
// changes, COPY, MOVE, expunge, REPLACE, RENAME and DELETE, and equal what
// counting the messages gives (checkClean recomputes them).
func TestMailboxCountsFollowEveryChange(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	type counts struct{ messages, size, unseen, deleted int64 }
	want := func(step, name string, c counts) {
		t.Helper()
		mb, err := s.Mailbox(ctx, a.ID, name)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got := (counts{mb.Messages, mb.Size, mb.Unseen, mb.Deleted}); got != c {
			t.Fatalf("%s: %s counts %+v, want %+v", step, name, got, c)
		}
		checkClean(t, s)
	}
	const body, n = "Subject: x\r\n\r\n0123456789\r\n", 26 // octets
	for range 4 {
		deliver(t, s, body, "a@example.org")
	}
	want("delivered", "INBOX", counts{4, 4 * n, 4, 0})
	if _, err := s.Append(ctx, a.ID, "Drafts", strings.NewReader(body), AppendOptions{Flags: []string{`\Seen`, `\Deleted`}}); err != nil {
		t.Fatal(err)
	}
	want("appended", "Drafts", counts{1, n, 0, 1})
	in := inbox(t, s, a)
	if _, err := s.StoreFlags(ctx, a.ID, in.ID, []uint32{1, 2}, FlagsAdd, []string{`\Seen`, "$Work"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, a.ID, in.ID, []uint32{2, 3}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, a.ID, in.ID, []uint32{3}, FlagsAdd, []string{`\Flagged`}); err != nil {
		t.Fatal(err) // no change of \Seen or \Deleted
	}
	want("flagged", "INBOX", counts{4, 4 * n, 2, 2})
	if _, err := s.CopyMessages(ctx, a.ID, in.ID, []uint32{1, 3}, "Archive"); err != nil {
		t.Fatal(err)
	}
	want("copied", "Archive", counts{2, 2 * n, 1, 1})
	if _, err := s.MoveMessages(ctx, a.ID, in.ID, []uint32{4}, "Archive"); err != nil {
		t.Fatal(err)
	}
	want("moved from", "INBOX", counts{3, 3 * n, 1, 2})
	want("moved to", "Archive", counts{3, 3 * n, 2, 1})
	if _, err := s.Expunge(ctx, a.ID, in.ID, []uint32{2, 3}); err != nil {
		t.Fatal(err)
	}
	want("expunged", "INBOX", counts{1, n, 0, 0})
	drafts, err := s.Mailbox(ctx, a.ID, "Drafts")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Replace(ctx, a.ID, drafts.ID, 1, "Drafts", strings.NewReader(body+"more\r\n"), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	want("replaced", "Drafts", counts{1, n + 6, 1, 0})
	if err := s.RenameMailbox(ctx, a.ID, "Archive", "Old/Archive"); err != nil {
		t.Fatal(err)
	}
	want("renamed", "Old/Archive", counts{3, 3 * n, 2, 1})
	if err := s.RenameMailbox(ctx, a.ID, "INBOX", "Saved"); err != nil {
		t.Fatal(err) // INBOX's messages move to the new mailbox (RFC 9051 §6.3.6)
	}
	want("renamed INBOX", "Saved", counts{1, n, 0, 0})
	want("renamed INBOX", "INBOX", counts{0, 0, 0, 0})
	if err := s.DeleteMailbox(ctx, a.ID, "Old/Archive"); err != nil {
		t.Fatal(err)
	}
	checkClean(t, s)
}

func TestDeletedUIDs(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	for range 5 {
		deliver(t, s, "x\r\n", "a@example.org")
	}
	mb := inbox(t, s, a)
	if got, err := s.DeletedUIDs(ctx, a.ID, mb.ID); err != nil || got != nil {
		t.Fatalf("none deleted: %v %v", got, err)
	}
	s.StoreFlags(ctx, a.ID, mb.ID, []uint32{4, 2, 5}, FlagsAdd, []string{`\Deleted`})
	s.StoreFlags(ctx, a.ID, mb.ID, []uint32{5}, FlagsRemove, []string{`\Deleted`})
	if got, _ := s.DeletedUIDs(ctx, a.ID, mb.ID); !slices.Equal(got, []uint32{2, 4}) {
		t.Errorf("deleted %v, want [2 4]", got)
	}
	s.Expunge(ctx, a.ID, mb.ID, []uint32{2})
	if got, _ := s.DeletedUIDs(ctx, a.ID, mb.ID); !slices.Equal(got, []uint32{4}) {
		t.Errorf("after an expunge: %v, want [4]", got)
	}
	other := addAccount(t, s, "b@example.org", nil)
	if _, err := s.DeletedUIDs(ctx, other.ID, mb.ID); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("another account's mailbox: %v", err)
	}
}

// TestMigrationCountsExistingMessages: a store from before migration 7
// gets each mailbox's counts from its messages when it is opened.
func TestMigrationCountsExistingMessages(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	a := addAccount(t, s, "a@example.org", nil)
	for _, body := range []string{"x\r\n", "yy\r\n", "zzz\r\n"} {
		deliver(t, s, body, "a@example.org")
	}
	if _, err := s.StoreFlags(ctx, a.ID, inbox(t, s, a).ID, []uint32{2}, FlagsAdd, []string{`\Seen`, `\Deleted`}); err != nil {
		t.Fatal(err)
	}
	// Back to schema 6: no triggers, no count columns (nor migration
	// 8's body rows and sent dates).
	for _, q := range []string{
		`DROP TRIGGER messages_body_id`, `DROP TRIGGER body_index_messages`, `DROP TRIGGER body_index_unmessages`,
		`ALTER TABLE messages DROP COLUMN body_id`, `ALTER TABLE messages DROP COLUMN sent`,
		`DROP TRIGGER messages_count_insert`, `DROP TRIGGER messages_count_delete`, `DROP TRIGGER messages_count_update`,
		`ALTER TABLE mailboxes DROP COLUMN messages`, `ALTER TABLE mailboxes DROP COLUMN size`,
		`ALTER TABLE mailboxes DROP COLUMN unseen`, `ALTER TABLE mailboxes DROP COLUMN deleted`,
		`PRAGMA user_version = 6`,
	} {
		if _, err := s.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()
	if s, err = Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mb := inbox(t, s, a)
	if mb.Messages != 3 || mb.Size != 12 || mb.Unseen != 2 || mb.Deleted != 1 {
		t.Errorf("after the migration INBOX has %+v, want 3 messages, 12 octets, 2 unseen, 1 deleted", *mb)
	}
	deliver(t, s, "w\r\n", "a@example.org")
	checkClean(t, s)
}
