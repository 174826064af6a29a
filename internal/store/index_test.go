package store

import (
	"context"
	"math"
	"slices"
	"sync"
	"testing"
)

// uidsFromDB reads a mailbox's UIDs and flags the slow way, for comparison.
func uidsFromDB(t *testing.T, s *Store, a *Account, mb *Mailbox) ([]uint32, [][]string) {
	t.Helper()
	msgs, err := s.Messages(context.Background(), a.ID, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	var flags [][]string
	for _, m := range msgs {
		uids = append(uids, m.UID)
		flags = append(flags, m.Flags)
	}
	return uids, flags
}

func TestIndexFollowsChanges(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	for i := 0; i < 5; i++ {
		deliver(t, s, "x\r\n", "a@example.org")
	}
	mb := inbox(t, s, a)
	sel, err := s.Select(ctx, a.ID, "INBOX") // loads the index
	if err != nil || !slices.Equal(sel.UIDs, []uint32{1, 2, 3, 4, 5}) || sel.Stats.Unseen != 5 {
		t.Fatalf("select: %+v %v", sel, err)
	}
	deliver(t, s, "y\r\n", "a@example.org")
	s.StoreFlags(ctx, a.ID, mb.ID, []uint32{2, 6}, FlagsAdd, []string{`\Seen`, "$Work"})
	s.Expunge(ctx, a.ID, mb.ID, []uint32{1, 3})
	s.CopyMessages(ctx, a.ID, mb.ID, []uint32{2}, "INBOX")

	sel, err = s.Select(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	want, wantFlags := uidsFromDB(t, s, a, mb)
	if !slices.Equal(sel.UIDs, want) {
		t.Errorf("index UIDs %v, database %v", sel.UIDs, want)
	}
	infos, err := s.MessagesInRanges(ctx, a.ID, mb.ID, []UIDRange{{5, math.MaxUint32}, {1, 4}, {2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	var gotUIDs []uint32
	for _, m := range infos {
		gotUIDs = append(gotUIDs, m.UID)
		got = append(got, m.Flags)
	}
	if !slices.Equal(gotUIDs, want) {
		t.Errorf("ranges listed %v, want %v once each", gotUIDs, want)
	}
	for i := range want {
		if !slices.Equal(got[i], wantFlags[i]) {
			t.Errorf("uid %d: index flags %v, database %v", want[i], got[i], wantFlags[i])
		}
	}
	if sel.Stats.Unseen != 2 || !slices.Equal(sel.Stats.Keywords, []string{"$Work"}) {
		t.Errorf("stats %+v", sel.Stats)
	}
}

// A change made by another process (the CLI, a repair) reaches the index:
// the mailbox's modseq in the database is ahead of it, so it reloads.
func TestIndexReloadsAfterChangeByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := addAccount(t, s, "a@example.org", nil)
	deliver(t, s, "x\r\n", "a@example.org")
	deliver(t, s, "y\r\n", "a@example.org")
	if sel, _ := s.Select(ctx, a.ID, "INBOX"); len(sel.UIDs) != 2 {
		t.Fatalf("select: %v", sel.UIDs)
	}
	other, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	mb := inbox(t, other, a)
	if _, err := other.Expunge(ctx, a.ID, mb.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if sel, _ := s.Select(ctx, a.ID, "INBOX"); !slices.Equal(sel.UIDs, []uint32{2}) {
		t.Errorf("after another process's expunge: %v", sel.UIDs)
	}
}

// Selects racing with deliveries, flag changes and expunges always see a
// state the database had: UIDs ascending and, once quiet, equal to it.
func TestIndexUnderConcurrentWrites(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	mb := inbox(t, s, a)
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				res := deliver(t, s, "z\r\n", "a@example.org")
				uid := res[0].UID
				if uid%3 == 0 {
					s.Expunge(ctx, a.ID, mb.ID, []uint32{uid - 1})
				} else {
					s.StoreFlags(ctx, a.ID, mb.ID, []uint32{uid}, FlagsAdd, []string{`\Flagged`})
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		if i%10 == 0 {
			s.index.mu.Lock()
			s.index.drop(mb.ID) // force reloads while writes go on
			s.index.mu.Unlock()
		}
		sel, err := s.Select(ctx, a.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(sel.UIDs) {
			t.Fatalf("UIDs out of order: %v", sel.UIDs)
		}
	}
	wg.Wait()
	sel, _ := s.Select(ctx, a.ID, "INBOX")
	want, _ := uidsFromDB(t, s, a, mb)
	if !slices.Equal(sel.UIDs, want) {
		t.Errorf("index %v\ndatabase %v", sel.UIDs, want)
	}
}
