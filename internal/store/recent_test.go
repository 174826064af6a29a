package store

import (
	"context"
	"math"
	"testing"
)

// A new message is recent for the first claim that covers it, and for no
// other; messages older than the store's start are not recent.
func TestClaimRecentOnce(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	mb := inbox(t, s, a)
	if got := s.ClaimRecent(mb.ID, 10); got != math.MaxUint32 {
		t.Errorf("empty mailbox: recent after %d", got)
	}
	for range 3 {
		deliver(t, s, "x\r\n", "a@example.org")
	}
	if got := s.RecentAfter(mb.ID); got != 0 {
		t.Errorf("peek: recent after %d, want 0", got)
	}
	if n, err := s.CountRecent(ctx, a.ID, mb.ID); err != nil || n != 3 {
		t.Errorf("count: %d %v, want 3", n, err)
	}
	if got := s.ClaimRecent(mb.ID, 2); got != 0 {
		t.Errorf("first claim up to 2: after %d, want 0", got)
	}
	if got := s.ClaimRecent(mb.ID, 2); got != math.MaxUint32 {
		t.Errorf("second claim up to 2: after %d, want none", got)
	}
	if n, _ := s.CountRecent(ctx, a.ID, mb.ID); n != 1 {
		t.Errorf("count after a claim: %d, want 1", n)
	}
	if got := s.ClaimRecent(mb.ID, 3); got != 2 {
		t.Errorf("claim up to 3: after %d, want 2", got)
	}
	if got := s.ClaimRecent(mb.ID, 3); got != math.MaxUint32 {
		t.Errorf("claim again: after %d, want none", got)
	}
	deliver(t, s, "y\r\n", "a@example.org")
	if got := s.ClaimRecent(mb.ID, 4); got != 3 {
		t.Errorf("claim of a later delivery: after %d, want 3", got)
	}

	// After a restart nothing delivered before it is recent.
	dir := s.Dir()
	deliver(t, s, "z\r\n", "a@example.org")
	s.Close()
	s2, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.ClaimRecent(mb.ID, 5); got != math.MaxUint32 {
		t.Errorf("after a restart: after %d, want none", got)
	}
}
