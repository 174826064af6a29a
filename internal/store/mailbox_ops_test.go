package store

import (
	"context"
	"errors"
	"slices"
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

// MailboxState finds a mailbox as Mailbox does, without counting it.
func TestMailboxStateSkipsCounts(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	deliver(t, s, "x\r\n", "a@example.org")
	full := inbox(t, s, a)
	mb, err := s.MailboxState(ctx, a.ID, "inbox")
	if err != nil {
		t.Fatal(err)
	}
	if mb.ID != full.ID || mb.Name != "INBOX" || mb.UIDNext != full.UIDNext || mb.HighestModSeq != full.HighestModSeq ||
		mb.UIDValidity != full.UIDValidity || mb.Messages != 0 || mb.Size != 0 {
		t.Errorf("MailboxState %+v, Mailbox %+v", *mb, *full)
	}
	if _, err := s.MailboxState(ctx, a.ID, "Nope"); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("missing mailbox: %v", err)
	}
	other := addAccount(t, s, "b@example.org", nil)
	if _, err := s.MailboxState(ctx, other.ID, "Sent"); err != nil {
		t.Errorf("own Sent: %v", err)
	}
}

// DeletedUIDs lists the messages with \Deleted from the index, following
// flag changes and expunges.
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
