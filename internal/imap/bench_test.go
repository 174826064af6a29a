package imap

// BenchmarkLargeMailbox measures SELECT and whole-mailbox FETCHes on a
// mailbox of LOFT_BENCH_MESSAGES messages (default 100,000); it runs only
// when that variable is set, since filling the mailbox takes a while:
//
//	LOFT_BENCH_MESSAGES=100000 go test -run XXX -bench LargeMailbox ./internal/imap/

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"loft/internal/store"
)

func BenchmarkLargeMailbox(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("LOFT_BENCH_MESSAGES"))
	if n <= 0 {
		b.Skip("set LOFT_BENCH_MESSAGES to run")
	}
	ts := newTestServer(b)
	start := time.Now()
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				ts.st.Deliver(context.Background(), strings.NewReader(sampleMsg), store.DeliverOptions{Recipients: []string{testUser}})
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	b.Logf("filled %d messages in %v", n, time.Since(start))
	c := ts.login(false)
	for _, step := range []string{"SELECT INBOX", "UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (BODY.PEEK[])"} {
		for i := range 3 {
			t0 := time.Now()
			out := c.run("x " + step)
			if res := out[len(out)-1]; !strings.HasPrefix(res, "x OK") {
				b.Fatalf("%s: %s", step, res)
			}
			b.Logf("%-30s run %d: %v", step, i+1, time.Since(t0))
		}
	}
}
