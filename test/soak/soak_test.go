package soak

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bounds of the soak test.
const (
	defaultSoak = 20 * time.Second // LOFT_SOAK_DURATION overrides it
	// The verification after the load reads every message once over
	// IMAP and the INBOXes over POP3; this bounds it and the set-up.
	soakOverhead = 3 * time.Minute
	// Memory may grow with the mail the run leaves stored and settle
	// late, but not without bound: the RSS at the end of the load may be
	// at most this much above the RSS at a third of it.
	rssGrowthFactor = 1.5
	rssGrowthSlack  = 64 << 20
	// After the load, with every client gone, the server holds at most
	// this many goroutines and open files more than a fresh start does.
	// Files: the database pool keeps up to 8 readers open (each with
	// its database and WAL files), which a fresh start has not opened yet.
	goroutineSlack = 30
	fdSlack        = 24
)

// seedOf is LOFT_SOAK_SEED, to replay a run, or a new seed.
func seedOf(t *testing.T) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("LOFT_SOAK_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("LOFT_SOAK_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d", seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("failed with seed %d; replay with LOFT_SOAK_SEED=%d go test -run %s ./test/soak/", seed, seed, t.Name())
		}
	})
	return seed
}

// TestSoak is issue 7's soak test: for LOFT_SOAK_DURATION (20 s by
// default; "10m" for the figures in docs/BENCHMARKS.md) a mixed load of
// deliveries, IMAP and POP3 clients on four shared accounts. Afterwards
// every mailbox equals the oracle, `loft check` is clean, the server's
// memory has not kept growing, and no goroutine or file outlived its
// session.
func TestSoak(t *testing.T) {
	dur := defaultSoak
	if s := os.Getenv("LOFT_SOAK_DURATION"); s != "" {
		var err error
		if dur, err = time.ParseDuration(s); err != nil || dur <= 0 {
			t.Fatalf("LOFT_SOAK_DURATION=%q: want a duration such as 20s or 10m", s)
		}
	}
	seed := seedOf(t)
	ctx, cancel := context.WithTimeout(context.Background(), dur+soakOverhead)
	defer cancel()

	cfg, _ := setup(t, ctx, t.TempDir(), accounts)
	srv := serve(t, ctx, cfg)
	tgt := newTarget()
	tgt.set(srv.addrs)
	stop, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	l := newLoad(newOracle(seed), tgt, false, stop, ctx)
	createFolders(t, l, srv.addrs["imap"])

	sampling, stopSampling := context.WithCancel(ctx)
	samples := srv.sample(sampling, time.Second)
	began := time.Now()
	l.start(seed)
	select {
	case <-time.After(dur):
	case <-ctx.Done():
	}
	stopLoad()
	l.wait()
	loadTime := time.Since(began)
	stopSampling()
	l.report(t)

	v := verify(t, l, srv.addrs["imap"], srv.addrs["pop3"])

	// Memory: the RSS at a third of the load against the RSS at its end.
	ss := samples()
	if len(ss) < 3 {
		t.Fatalf("%d samples of the server's memory, want 3 or more", len(ss))
	}
	var third procStatus
	for _, s := range ss {
		if s.at <= dur/3 {
			third = s
		}
	}
	last := ss[len(ss)-1]
	if limit := int64(float64(third.rss)*rssGrowthFactor) + rssGrowthSlack; last.rss > limit {
		t.Errorf("RSS grew from %s at %v to %s at %v, over the bound of %s", mib(third.rss), third.at.Round(time.Second),
			mib(last.rss), last.at.Round(time.Second), mib(limit))
	}
	// Leaks: goroutines and files once every client has gone, against
	// a fresh start on the same data.
	time.Sleep(time.Second)
	after, err := srv.status()
	if err != nil {
		t.Fatal(err)
	}
	goroutines := srv.goroutines(t)
	fresh := serve(t, ctx, cfg)
	time.Sleep(time.Second)
	freshStatus, err := fresh.status()
	if err != nil {
		t.Fatal(err)
	}
	freshGoroutines := fresh.goroutines(t)
	if goroutines > freshGoroutines+goroutineSlack {
		t.Errorf("%d goroutines after the load, %d after a fresh start: sessions leave goroutines behind", goroutines, freshGoroutines)
	}
	if after.fds > freshStatus.fds+fdSlack {
		t.Errorf("%d open files after the load, %d after a fresh start: sessions leave files open", after.fds, freshStatus.fds)
	}

	if out := loft(t, ctx, "", "check", "--config", cfg); !strings.HasPrefix(out, "ok") {
		t.Errorf("loft check: %q, want ok", out)
	}
	if l.get("smtp")+l.get("lmtp") == 0 || l.get("imap-move") == 0 || l.get("pop3-dele") == 0 {
		t.Errorf("the load did too little to prove anything: %s", l.summary())
	}
	peak := last.hwm
	t.Log(fmt.Sprintf("soak %v: %s; errors: %d; %s; server RSS %s at the start, %s at %v, %s at the end (anonymous %s, files %s, shared %s), peak (VmHWM) %s; threads %d; "+
		"after the load %d goroutines and %d open files (fresh start: %d, %d)",
		loadTime.Round(time.Second), l.summary(), l.errors(), v, mib(ss[0].rss), mib(third.rss), third.at.Round(time.Second),
		mib(last.rss), mib(last.anon), mib(last.file), mib(last.shmem), mib(peak), last.threads, goroutines, after.fds, freshGoroutines, freshStatus.fds))
}
