package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sortMessage is a message with sort and thread keys of its own: a
// subject, a sender, a date and a reference to the message before it.
func sortMessage(i int) string {
	return fmt.Sprintf("From: Sender %d <s%d@example.org>\r\nTo: r%d@example.org\r\nSubject: Re: topic %d\r\n"+
		"Date: Sun, 22 Nov 2026 10:%02d:%02d +0000\r\nMessage-ID: <%d@sort.test>\r\nReferences: <%d@sort.test>\r\n\r\nbody %d\r\n",
		i%7, i%7, i%5, i%11, (i*13)%60, i%60, i, i-1, i)
}

// checkSortCache compares the cache's keys of mailbox mb with the
// database's, for the messages the mailbox holds.
func checkSortCache(t *testing.T, s *Store, a *Account, mb *Mailbox, when string) {
	t.Helper()
	ctx := context.Background()
	cached, err := s.SortInfo(ctx, a.ID, mb.ID, SortAll)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := s.loadSortInfo(ctx, a.ID, mb.ID, 0, SortAll)
	if err != nil {
		t.Fatal(err)
	}
	if len(cached) != len(fresh) {
		t.Fatalf("%s: %d cached keys, %d in the database", when, len(cached), len(fresh))
	}
	for i := range fresh {
		c, f := cached[i], fresh[i]
		if c.UID != f.UID || c.Sent != f.Sent || c.Subject != f.Subject || c.From != f.From || c.To != f.To ||
			c.MessageID != f.MessageID || !slices.Equal(c.References, f.References) || c.Size != f.Size {
			t.Fatalf("%s: message %d: cached %+v, database %+v", when, i, c, f)
		}
	}
}

func TestSortCacheFollowsChanges(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	for i := 1; i <= 20; i++ {
		deliver(t, s, sortMessage(i), "a@example.org")
	}
	mb := inbox(t, s, a)
	checkSortCache(t, s, a, mb, "first use")
	// Another account gets nothing of this mailbox, cached or not.
	b := addAccount(t, s, "b@example.org", nil)
	if got, err := s.SortInfo(ctx, b.ID, mb.ID, SortAll); err != nil || len(got) != 0 {
		t.Errorf("another account's SortInfo of the mailbox: %d keys, %v", len(got), err)
	}

	for i := 21; i <= 25; i++ {
		deliver(t, s, sortMessage(i), "a@example.org")
	}
	checkSortCache(t, s, a, mb, "after deliveries")

	if _, err := s.StoreFlags(ctx, a.ID, mb.ID, []uint32{2, 22}, FlagsAdd, []string{`\Seen`, "$Work"}); err != nil {
		t.Fatal(err)
	}
	checkSortCache(t, s, a, mb, "after flag changes")

	if _, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{1, 5, 24}); err != nil {
		t.Fatal(err)
	}
	checkSortCache(t, s, a, mb, "after expunges")

	// Copies and moves arrive with new UIDs, the moved ones leave.
	if _, err := s.CopyMessages(ctx, a.ID, mb.ID, []uint32{2, 3}, "INBOX"); err != nil {
		t.Fatal(err)
	}
	archive, err := s.Mailbox(ctx, a.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	checkSortCache(t, s, a, archive, "Archive before the move")
	if _, err := s.MoveMessages(ctx, a.ID, mb.ID, []uint32{6, 7}, "Archive"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, a.ID, "INBOX", strings.NewReader(sortMessage(26)), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	checkSortCache(t, s, a, mb, "after copy, move and append")
	checkSortCache(t, s, a, archive, "Archive after the move")

	// Renaming INBOX moves its messages to a new mailbox; INBOX is empty.
	if err := s.RenameMailbox(ctx, a.ID, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	checkSortCache(t, s, a, mb, "INBOX after its rename")
	old, err := s.Mailbox(ctx, a.ID, "Old")
	if err != nil {
		t.Fatal(err)
	}
	checkSortCache(t, s, a, old, "the renamed mailbox")
}

// Deliveries, expunges and flag changes race with SORTs: whatever
// interleaving, the next SortInfo equals the database.
func TestSortCacheConcurrentChanges(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	for i := 1; i <= 30; i++ {
		deliver(t, s, sortMessage(i), "a@example.org")
	}
	mb := inbox(t, s, a)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 31; i <= 60; i++ {
			if _, err := s.Deliver(ctx, strings.NewReader(sortMessage(i)), DeliverOptions{Recipients: []string{"a@example.org"}}); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		for uid := uint32(1); uid <= 40; uid += 3 {
			s.Expunge(ctx, a.ID, mb.ID, []uint32{uid})
			s.StoreFlags(ctx, a.ID, mb.ID, []uint32{uid + 1}, FlagsAdd, []string{`\Flagged`})
		}
	})
	for range 3 {
		wg.Go(func() {
			for range 20 {
				if _, err := s.SortInfo(ctx, a.ID, mb.ID, SortAll); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkSortCache(t, s, a, mb, "after the race")
}

// The cache stays under its bound: the least recently used mailbox goes,
// and a mailbox larger than the bound is answered but not kept.
func TestSortCacheEvictsAboveItsBound(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	s.sorts.max = 10
	var mbs []*Mailbox
	var accts []*Account
	for k, n := range []int{4, 5, 4, 11} {
		addr := fmt.Sprintf("u%d@example.org", k)
		a := addAccount(t, s, addr, nil)
		for i := range n {
			deliver(t, s, sortMessage(i+1), addr)
		}
		accts, mbs = append(accts, a), append(mbs, inbox(t, s, a))
	}
	use := func(k int) {
		t.Helper()
		if _, err := s.SortInfo(ctx, accts[k].ID, mbs[k].ID, SortAll); err != nil {
			t.Fatal(err)
		}
	}
	cached := func() []int64 {
		s.sorts.mu.Lock()
		defer s.sorts.mu.Unlock()
		var ids []int64
		for k := range s.sorts.entries {
			ids = append(ids, k.mailbox)
		}
		slices.Sort(ids)
		return ids
	}
	use(0)
	use(1)
	if got := cached(); !slices.Equal(got, []int64{mbs[0].ID, mbs[1].ID}) || s.sorts.total != 9 {
		t.Fatalf("cached %v (%d messages), want the first two (9)", got, s.sorts.total)
	}
	use(2) // 13 > 10: the least recently used, the first, goes
	if got := cached(); !slices.Equal(got, []int64{mbs[1].ID, mbs[2].ID}) || s.sorts.total != 9 {
		t.Fatalf("cached %v (%d messages), want the second and third (9)", got, s.sorts.total)
	}
	use(3) // alone over the bound: not kept, the others stay
	if got := cached(); !slices.Equal(got, []int64{mbs[1].ID, mbs[2].ID}) || s.sorts.total != 9 {
		t.Fatalf("cached %v (%d messages), want the second and third (9)", got, s.sorts.total)
	}
	checkSortCache(t, s, accts[3], mbs[3], "the mailbox over the bound")
}

// TestSortCacheDatesThenAll: an entry filled with dates only, for a SORT
// by DATE, is filled again with every key when THREAD or a SORT by
// SUBJECT asks for them, and keeps them for the next SORT by DATE.
func TestSortCacheDatesThenAll(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	for i := 1; i <= 5; i++ {
		deliver(t, s, sortMessage(i), "a@example.org")
	}
	mb := inbox(t, s, a)
	dates, err := s.SortInfo(ctx, a.ID, mb.ID, SortDates)
	if err != nil || len(dates) != 5 {
		t.Fatalf("dates: %d keys, %v", len(dates), err)
	}
	if dates[0].Sent == dates[0].InternalDate || dates[0].Subject != "" {
		t.Errorf("dates only: %+v", dates[0])
	}
	deliver(t, s, sortMessage(6), "a@example.org")
	checkSortCache(t, s, a, mb, "all after dates") // SortAll
	again, err := s.SortInfo(ctx, a.ID, mb.ID, SortDates)
	if err != nil || len(again) != 6 || again[5].Subject != "TOPIC 6" {
		t.Fatalf("dates after all: %d keys, %v, last %+v", len(again), err, again[len(again)-1])
	}

	// A reindex between the dates and the rest gives the bodies new index
	// rows: the rest is loaded afresh.
	s.sorts = newSortCache()
	if _, err := s.SortInfo(ctx, a.ID, mb.ID, SortDates); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reindex(ctx, ""); err != nil {
		t.Fatal(err)
	}
	checkSortCache(t, s, a, mb, "all after dates and a reindex")
}
