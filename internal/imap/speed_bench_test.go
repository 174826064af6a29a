package imap

// Benchmarks of the commands of issue 4's speed check, in process and over
// TCP, for CPU profiles and allocation counts rather than wall clock (the
// machine is shared): the mixed profile's rounds without the LOGIN, SELECT
// of a large mailbox, and FETCH of cached structures. With the data
// directory on tmpfs, fsync is free and the figures are the CPU's:
//
//	TMPDIR=/dev/shm go test -run XXX -bench 'Mixed|Select|FetchEnvelope' -benchmem ./internal/imap/

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"loft/internal/store"
)

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU starts the timer and, when the benchmark ends, reports the
// CPU time of the whole process (server and test client) per operation:
// steadier than wall clock on a machine shared with other work.
func reportCPU(b *testing.B) {
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	b.Cleanup(func() {
		b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
	})
}

// fillInbox delivers n copies of msg to the test account's INBOX.
func fillInbox(b *testing.B, ts *testServer, n int, msg string) {
	b.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				ts.st.Deliver(context.Background(), strings.NewReader(msg), store.DeliverOptions{Recipients: []string{testUser}})
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	b.Logf("filled %d messages in %v", n, time.Since(start))
}

// BenchmarkMixedRound is one round of loftbench's imap mode after its
// LOGIN (its --loops-per-login): SELECT; FETCH of a range's ENVELOPE
// BODYSTRUCTURE FLAGS; FETCH of another range's headers; FETCH of a whole
// message; STORE ±\Seen; UID STORE \Deleted and EXPUNGE of the message the
// previous round appended; APPEND (LITERAL+) of the next message of the
// standard set; on a mailbox of 300 messages of the set.
func BenchmarkMixedRound(b *testing.B) {
	msgs := standardSet(b)
	ts := newTestServer(b)
	ts.deliverAll(msgs[:300])
	c := ts.login(false)
	rng := rand.New(rand.NewPCG(1, 2))
	span := func(n int) string {
		lo := 1 + rng.IntN(n)
		hi := min(n, lo+rng.IntN(10))
		return fmt.Sprintf("%d:%d", lo, hi)
	}
	ok := func(out []string) {
		if l := out[len(out)-1]; !strings.Contains(l, " OK ") {
			b.Fatalf("%s", l)
		}
	}
	next := 300
	appended := ""
	reportCPU(b)
	for range b.N {
		out := c.run("a SELECT INBOX")
		ok(out)
		exists := 0
		for _, l := range out {
			if n, ok := strings.CutSuffix(l, " EXISTS"); ok {
				exists, _ = strconv.Atoi(strings.TrimPrefix(n, "* "))
			}
		}
		ok(c.run("b FETCH " + span(exists) + " (ENVELOPE BODYSTRUCTURE FLAGS)"))
		ok(c.run("c FETCH " + span(exists) + " (BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])"))
		ok(c.run("d FETCH " + strconv.Itoa(1+rng.IntN(exists)) + " (BODY.PEEK[])"))
		ok(c.run("e STORE " + span(exists) + [2]string{" +FLAGS (\\Seen)", " -FLAGS (\\Seen)"}[rng.IntN(2)]))
		if appended != "" {
			ok(c.run("f UID STORE " + appended + " +FLAGS.SILENT (\\Deleted)"))
			ok(c.run("g EXPUNGE"))
		}
		m := msgs[next%len(msgs)]
		next++
		out = c.run(fmt.Sprintf("h APPEND INBOX {%d+}\r\n%s", len(m), m))
		ok(out)
		l := out[len(out)-1]
		var uidValidity, uid int
		if _, err := fmt.Sscanf(l, "h OK [APPENDUID %d %d]", &uidValidity, &uid); err != nil {
			b.Fatalf("%s: %v", l, err)
		}
		appended = strconv.Itoa(uid)
	}
}

// BenchmarkSelect is SELECT INBOX of a mailbox of LOFT_BENCH_SELECT
// messages (default 20,000).
func BenchmarkSelect(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("LOFT_BENCH_SELECT"))
	if n <= 0 {
		n = 20000
	}
	ts := newTestServer(b)
	fillInbox(b, ts, n, sampleMsg)
	c := ts.login(false)
	c.run("w SELECT INBOX")
	reportCPU(b)
	for range b.N {
		out := c.run("s SELECT INBOX")
		if l := out[len(out)-1]; !strings.HasPrefix(l, "s OK") {
			b.Fatal(l)
		}
	}
}

// BenchmarkFetchEnvelope is FETCH 1:50 (ENVELOPE BODYSTRUCTURE FLAGS) over
// messages of the standard set: the structures come from the cache made at
// delivery.
func BenchmarkFetchEnvelope(b *testing.B) {
	msgs := standardSet(b)
	ts := newTestServer(b)
	ts.deliverAll(msgs[:50])
	c := ts.login(false)
	c.run("s SELECT INBOX")
	reportCPU(b)
	for range b.N {
		out := c.run("f FETCH 1:50 (ENVELOPE BODYSTRUCTURE FLAGS)")
		if l := out[len(out)-1]; !strings.HasPrefix(l, "f OK") {
			b.Fatal(l)
		}
	}
}

// BenchmarkFetchFlagsAll is UID FETCH 1:* (FLAGS) of a mailbox of
// LOFT_BENCH_SELECT messages (default 20,000).
func BenchmarkFetchFlagsAll(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("LOFT_BENCH_SELECT"))
	if n <= 0 {
		n = 20000
	}
	ts := newTestServer(b)
	fillInbox(b, ts, n, sampleMsg)
	c := ts.login(false)
	c.run("s SELECT INBOX")
	reportCPU(b)
	for range b.N {
		out := c.run("f UID FETCH 1:* (FLAGS)")
		if l := out[len(out)-1]; !strings.HasPrefix(l, "f OK") {
			b.Fatal(l)
		}
	}
}
