package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

const condMsg = "From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"

func TestStoreFlagsUnchangedSince(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@example.org", nil)
	for range 3 {
		deliver(t, s, condMsg, a.Address)
	}
	ctx := context.Background()
	mb := inbox(t, s, a)
	// Modseqs: 2, 3, 4 for UIDs 1, 2, 3 (the mailbox starts at 1).
	upd, err := s.StoreFlags(ctx, a.ID, mb.ID, []uint32{2}, FlagsAdd, []string{`\Seen`})
	if err != nil || len(upd) != 1 || upd[0].ModSeq != 5 {
		t.Fatalf("store: %+v %v", upd, err)
	}
	// UID 2 changed at 5: it fails a test at 4; 1 and 3 pass.
	upd, failed, err := s.StoreFlagsWith(ctx, a.ID, mb.ID, []uint32{1, 2, 3}, FlagsAdd, []string{`\Flagged`},
		StoreFlagsOptions{Conditional: true, UnchangedSince: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(failed, []uint32{2}) || len(upd) != 2 || upd[0].UID != 1 || upd[1].UID != 3 || upd[1].ModSeq != 7 {
		t.Fatalf("updated %+v failed %v", upd, failed)
	}
	// UNCHANGEDSINCE 0 fails for every message.
	_, failed, _ = s.StoreFlagsWith(ctx, a.ID, mb.ID, []uint32{1, 2, 3}, FlagsAdd, []string{`\Seen`},
		StoreFlagsOptions{Conditional: true})
	if !slices.Equal(failed, []uint32{1, 2, 3}) {
		t.Fatalf("failed %v", failed)
	}
}

func TestExpungedSinceAndSelectChangedSince(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@example.org", nil)
	for range 6 {
		deliver(t, s, condMsg, a.Address)
	}
	ctx := context.Background()
	mb := inbox(t, s, a)
	sel, err := s.Select(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	known := sel.Mailbox.HighestModSeq // 7
	if _, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, a.ID, mb.ID, []uint32{4, 5}, FlagsAdd, []string{`$Done`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{6, 3}); err != nil {
		t.Fatal(err)
	}
	sel, res, err := s.SelectChangedSince(ctx, a.ID, "INBOX", known)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sel.UIDs, []uint32{1, 4, 5}) || sel.Mailbox.HighestModSeq != known+4 {
		t.Fatalf("selection %v at %d", sel.UIDs, sel.Mailbox.HighestModSeq)
	}
	if !slices.Equal(res.Vanished, []uint32{2, 3, 6}) || len(res.Changed) != 2 || res.Changed[0].UID != 4 || res.Changed[1].UID != 5 {
		t.Fatalf("resync %+v", res)
	}
	// Only the last expunge is above known+3; none is above the highest.
	if got, _ := s.ExpungedSince(ctx, a.ID, mb.ID, known+3, 0); !slices.Equal(got, []uint32{3, 6}) {
		t.Fatalf("expunged since %d: %v", known+3, got)
	}
	if got, _ := s.ExpungedSince(ctx, a.ID, mb.ID, known, known+1); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("expunged in (%d, %d]: %v", known, known+1, got)
	}
	if got, _ := s.ExpungedSince(ctx, a.ID+1, mb.ID, 0, 0); len(got) != 0 {
		t.Fatalf("another account sees %v", got)
	}
}

func TestSaveDateSetOnEveryInsert(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@example.org", nil)
	deliver(t, s, condMsg, a.Address)
	ctx := context.Background()
	mb := inbox(t, s, a)
	before := time.Now().Add(-time.Minute)
	if _, err := s.CopyMessages(ctx, a.ID, mb.ID, []uint32{1}, "Archive"); err != nil {
		t.Fatal(err)
	}
	arch, err := s.Mailbox(ctx, a.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{mb.ID, arch.ID} {
		d, err := s.SaveDates(ctx, a.ID, id, []UIDRange{{1, 10}})
		if err != nil || len(d) != 1 || d[1].Before(before) {
			t.Fatalf("mailbox %d: %v %v", id, d, err)
		}
	}
}
