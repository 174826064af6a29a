package store

// Benchmarks of SEARCH TEXT and of a cold SORT's keys on one large
// mailbox. The mailbox is $LOFT_BENCH_MESSAGES (default 5,000) generated
// small messages, "kappa" in nine of ten; or, with $LOFT_BENCH_DIR, the
// largest INBOX of a copy of a filled data directory (loft.db is enough),
// such as the one bench/imap-sync.sh leaves with KEEP_TMP=1:
//
//	go test -run - -bench 'SearchText|SortInfoCold' -benchmem ./internal/store
//	LOFT_BENCH_DIR=/tmp/copy/data go test -run - -bench SortInfoCold -cpuprofile cpu.out ./internal/store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// benchMailbox opens the store and returns the account and mailbox to
// search, every text indexed.
func benchMailbox(b *testing.B) (*Store, int64, int64) {
	ctx := context.Background()
	if dir := os.Getenv("LOFT_BENCH_DIR"); dir != "" {
		s, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		var acct, mb int64
		err = s.db.QueryRowContext(ctx, `SELECT b.account_id, b.id FROM mailboxes b
			ORDER BY (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id) DESC LIMIT 1`).Scan(&acct, &mb)
		if err != nil {
			b.Fatal(err)
		}
		return s, acct, mb
	}
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("LOFT_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	s, err := Open(ctx, Options{Dir: b.TempDir(), DefaultQuota: Unlimited})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	a, err := s.CreateAccount(ctx, "bench@bench.test", "x", nil)
	if err != nil {
		b.Fatal(err)
	}
	words := []string{"alpha", "beta", "gamma", "delta", "kappa", "omega"}
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				kappa := "kappa"
				if i%10 == 0 {
					kappa = "lambda"
				}
				msg := fmt.Sprintf("From: s%d@example.org\r\nTo: bench@bench.test\r\nSubject: %s %d\r\n"+
					"Date: Sun, 22 Nov 2026 10:%02d:%02d +0000\r\nMessage-ID: <%d@bench.test>\r\n\r\n"+
					"message %d: %s %s and %s\r\n", i%97, words[i%len(words)], i, (i*13)%60, i%60, i, i, words[(i+1)%len(words)], kappa, words[(i+2)%len(words)])
				if _, err := s.Deliver(ctx, strings.NewReader(msg), DeliverOptions{Recipients: []string{"bench@bench.test"}}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if _, err := s.IndexPending(ctx); err != nil {
		b.Fatal(err)
	}
	mb, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	return s, a.ID, mb.ID
}

// BenchmarkSearchTextCommon searches for a word most messages have: the
// index narrows little, so the cost is in mapping and confirming. One
// untimed search first fills the caches, as a session's first does.
func BenchmarkSearchTextCommon(b *testing.B) {
	s, acct, mb := benchMailbox(b)
	ctx := context.Background()
	if _, err := s.SearchText(ctx, acct, mb, TextAll, "kappa"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var hits int
	for range b.N {
		res, err := s.SearchText(ctx, acct, mb, TextAll, "kappa")
		if err != nil {
			b.Fatal(err)
		}
		hits = len(res.Matches)
	}
	b.ReportMetric(float64(hits), "hits")
}

// BenchmarkSortInfoCold reads a mailbox's sort keys with an empty cache,
// as the first SORT (dates: by DATE) or THREAD (all) after a restart does,
// and the rest of the keys after the dates (dates,all: THREAD after SORT).
func BenchmarkSortInfoCold(b *testing.B) {
	s, acct, mb := benchMailbox(b)
	ctx := context.Background()
	for _, keys := range []struct {
		name string
		want SortKeys
	}{{"dates", SortDates}, {"all", SortAll}, {"dates,all", SortAll}} {
		b.Run(keys.name, func(b *testing.B) {
			var n int
			for range b.N {
				s.sorts = newSortCache()
				if keys.want == SortAll && keys.name == "dates,all" {
					// The dates are there: the cost of adding the rest.
					b.StopTimer()
					if _, err := s.SortInfo(ctx, acct, mb, SortDates); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				keys, err := s.SortInfo(ctx, acct, mb, keys.want)
				if err != nil {
					b.Fatal(err)
				}
				n = len(keys)
			}
			b.ReportMetric(float64(n), "msgs")
		})
	}
}

// BenchmarkMailboxCounts reads a large mailbox with its counts, as STATUS
// (MESSAGES SIZE UNSEEN DELETED) does: one row since migration 7, where
// counting 100,000 messages took 30-110 ms.
func BenchmarkMailboxCounts(b *testing.B) {
	s, acct, mb := benchMailbox(b)
	ctx := context.Background()
	var name string
	if err := s.db.QueryRowContext(ctx, `SELECT name FROM mailboxes WHERE id = ?`, mb).Scan(&name); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var n int64
	for range b.N {
		m, err := s.Mailbox(ctx, acct, name)
		if err != nil {
			b.Fatal(err)
		}
		n = m.Messages + m.Unseen
	}
	b.ReportMetric(float64(n), "messages+unseen")
}
