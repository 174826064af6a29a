package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestTotalsSumEveryAccount: the totals the metrics report are the sum of
// the accounts' own figures, a message delivered to two counting twice.
func TestTotalsSumEveryAccount(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	if got, err := s.Totals(ctx); err != nil || got != (Totals{}) {
		t.Fatalf("empty store: %+v, %v", got, err)
	}
	addAccount(t, s, "a@example.test", nil)
	addAccount(t, s, "b@example.test", nil)
	res := deliver(t, s, "Subject: one\r\nMessage-ID: <one@example.test>\r\n\r\nbody\r\n", "a@example.test", "b@example.test")
	deliver(t, s, "Subject: two\r\n\r\nbody two\r\n", "a@example.test")
	if res[0].Size <= 0 || res[0].MessageID != "<one@example.test>" || res[1].Size != res[0].Size {
		t.Errorf("delivery results %+v", res)
	}
	accounts, err := s.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want Totals
	for _, a := range accounts {
		want.Accounts++
		want.Messages += a.Messages
		want.Usage += a.Usage
	}
	got, err := s.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || got.Messages != 3 {
		t.Errorf("Totals = %+v, want %+v with 3 messages", got, want)
	}
}

// TestCommitsObserved: each group commit is reported to ObserveCommit.
func TestCommitsObserved(t *testing.T) {
	var commits atomic.Int64
	s, err := Open(context.Background(), Options{Dir: t.TempDir(), DefaultQuota: Unlimited,
		ObserveCommit: func(d time.Duration) {
			if d > 0 {
				commits.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := commits.Load()
	addAccount(t, s, "a@example.test", nil)
	deliver(t, s, "Subject: one\r\n\r\nbody\r\n", "a@example.test")
	if n := commits.Load() - before; n < 2 {
		t.Errorf("%d commits observed for an account creation and a delivery", n)
	}
}
