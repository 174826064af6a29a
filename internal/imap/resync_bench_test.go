package imap

// BenchmarkQresyncResync measures what a reconnecting phone costs: a
// SELECT (QRESYNC ...) of a mailbox of LOFT_BENCH_MESSAGES messages
// (default 10,000) after 100 changes made by others since its last visit
// (80 flag changes, 10 expunges, 10 new messages), over TCP, from the
// command to its tagged OK. It reports the bytes of the response, which
// should follow the number of changes, not the size of the mailbox:
//
//	go test -run XXX -bench QresyncResync -benchtime 200x ./internal/imap/

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"loft/internal/store"
)

func BenchmarkQresyncResync(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("LOFT_BENCH_MESSAGES"))
	if n <= 0 {
		n = 10000
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

	ctx := context.Background()
	c := ts.login(false)
	c.run("q ENABLE QRESYNC")
	out := c.run("s SELECT INBOX")
	uv := uidValidity(b, out)
	modseq := highestModSeq(b, out)
	c.run("u UNSELECT")
	mb, err := ts.st.Mailbox(ctx, ts.acct.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	var wire, lines int
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		uids, err := ts.st.UIDs(ctx, ts.acct.ID, mb.ID)
		if err != nil {
			b.Fatal(err)
		}
		var flagged []uint32
		for j := 10; j < len(uids) && len(flagged) < 80; j += len(uids) / 80 {
			flagged = append(flagged, uids[j])
		}
		// A keyword of this round's own: every one of them is a change.
		if _, err := ts.st.StoreFlags(ctx, ts.acct.ID, mb.ID, flagged, store.FlagsReplace, []string{"$R" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
		if _, err := ts.st.Expunge(ctx, ts.acct.ID, mb.ID, uids[:10]); err != nil {
			b.Fatal(err)
		}
		for range 10 {
			ts.deliver(sampleMsg)
		}
		b.StartTimer()
		out := c.run(fmt.Sprintf("s%d SELECT INBOX (QRESYNC (%d %d))", i, uv, modseq))
		b.StopTimer()
		if res := out[len(out)-1]; !strings.HasPrefix(res, fmt.Sprintf("s%d OK", i)) {
			b.Fatalf("select: %s", res)
		}
		if got := len(responsesLike(out, `FETCH|VANISHED`)); got != 91 {
			b.Fatalf("%d FETCH and VANISHED responses, want 90 + 1:\n%s", got, strings.Join(out, "\n"))
		}
		for _, l := range out {
			wire += len(l) + 2
		}
		lines += len(out)
		modseq = highestModSeq(b, out)
		c.run("u UNSELECT")
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(wire)/float64(b.N), "B/resync")
	b.ReportMetric(float64(lines)/float64(b.N), "lines/resync")
}

func highestModSeq(b testing.TB, out []string) int64 {
	b.Helper()
	for _, l := range out {
		if m := regexp.MustCompile(`^\* OK \[HIGHESTMODSEQ (\d+)\]`).FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			return n
		}
	}
	b.Fatalf("no HIGHESTMODSEQ in %q", out)
	return 0
}
