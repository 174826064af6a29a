package store

import (
	"context"
	"math"
	"math/rand/v2"
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

// The counts SELECT reports are kept with every change, not recounted:
// after any mix of deliveries, flag changes and expunges they equal what
// the database says.
func TestIndexCountsFollowChanges(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	mb := inbox(t, s, a)
	if _, err := s.Select(ctx, a.ID, "INBOX"); err != nil { // loads the (empty) index
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 2))
	flagSets := [][]string{nil, {`\Seen`}, {`\Deleted`}, {`\Seen`, "$A"}, {"$A", "$B"}, {`\Seen`, `\Deleted`, "$B"}}
	var live []uint32
	for i := range 400 {
		switch op := rng.IntN(10); {
		case op < 4 || len(live) == 0:
			live = append(live, deliver(t, s, "x\r\n", "a@example.org")[0].UID)
		case op < 8:
			uid := live[rng.IntN(len(live))]
			if _, err := s.StoreFlags(ctx, a.ID, mb.ID, []uint32{uid}, FlagsReplace, flagSets[rng.IntN(len(flagSets))]); err != nil {
				t.Fatal(err)
			}
		default:
			j := rng.IntN(len(live))
			if _, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{live[j]}); err != nil {
				t.Fatal(err)
			}
			live = slices.Delete(live, j, j+1)
		}
		sel, err := s.Select(ctx, a.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.Stats(ctx, a.ID, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Stats.Unseen != want.Unseen || sel.Stats.Deleted != want.Deleted ||
			sel.Stats.FirstUnseen != want.FirstUnseen || !slices.Equal(sel.Stats.Keywords, want.Keywords) {
			t.Fatalf("step %d: index %+v, database %+v", i, sel.Stats, *want)
		}
		if !slices.Equal(sel.UIDs, live) {
			t.Fatalf("step %d: index UIDs %v, want %v", i, sel.UIDs, live)
		}
	}
}

// SELECT shares the index's UID array instead of copying it, and a
// selection keeps what it saw while the mailbox changes after it.
func TestSelectSharesUIDsCopyOnWrite(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	mb := inbox(t, s, a)
	for range 4 {
		deliver(t, s, "x\r\n", "a@example.org")
	}
	first, err := s.Select(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Select(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if &first.UIDs[0] != &second.UIDs[0] {
		t.Error("the second SELECT copied the UIDs")
	}
	if cap(first.UIDs) != len(first.UIDs) {
		t.Errorf("capacity %d beyond the length %d: an append would write into the shared array", cap(first.UIDs), len(first.UIDs))
	}
	deliver(t, s, "y\r\n", "a@example.org")
	if _, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	s.StoreFlags(ctx, a.ID, mb.ID, []uint32{3}, FlagsAdd, []string{"$K"})
	if !slices.Equal(first.UIDs, []uint32{1, 2, 3, 4}) || first.Stats.Keywords != nil {
		t.Errorf("an earlier selection changed: %v %v", first.UIDs, first.Stats.Keywords)
	}
	third, _ := s.Select(ctx, a.ID, "INBOX")
	if !slices.Equal(third.UIDs, []uint32{1, 3, 4, 5}) || !slices.Equal(third.Stats.Keywords, []string{"$K"}) {
		t.Errorf("after the changes: %v %v", third.UIDs, third.Stats.Keywords)
	}
}
