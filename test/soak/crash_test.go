package soak

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Bounds of the crash test.
const (
	crashKills   = 11               // SIGKILL rounds; then a last round that ends with a graceful stop
	crashBudget  = 90 * time.Second // the whole test, verification included (it takes about 40 s)
	minKill      = 500 * time.Millisecond
	maxKill      = 2500 * time.Millisecond
	lastRound    = 2 * time.Second
	progressWait = 15 * time.Second // for the first acknowledged operations of a round
)

// TestSoakCrash is issue 7's crash test: the soak's load (deliveries over
// SMTP and LMTP, IMAP clients moving, flagging, appending and expunging,
// IDLE, POP3 clients downloading and deleting) while the server is killed
// with SIGKILL at a random moment, crashKills times, and restarted on the
// same data. Afterwards the oracle holds: everything acknowledged is where
// its last acknowledged operation put it (a delivery's 250, APPEND's OK,
// MOVE's OK, EXPUNGE's OK, POP3 QUIT's +OK after DELE), nothing is stored
// twice, nothing deleted has come back; an operation whose reply a kill
// cut off may have happened or not. And `loft check` is clean.
func TestSoakCrash(t *testing.T) {
	seed := seedOf(t)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), crashBudget)
	defer cancel()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))

	cfg, _ := setup(t, ctx, t.TempDir(), accounts)
	tgt := newTarget()
	stop, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	l := newLoad(newOracle(seed), tgt, true, stop, ctx)
	defer l.wait()
	defer cancel() // before l.wait: close what the clients still hold

	// progress is what must move in every round: deliveries, and the
	// IMAP and POP3 clients' acknowledged operations.
	progress := func() (deliveries, mailboxOps int64) {
		return l.get("smtp") + l.get("lmtp"),
			l.get("imap-append") + l.get("imap-move") + l.get("imap-store") + l.get("imap-expunge") + l.get("pop3-retr")
	}
	for round := 1; round <= crashKills+1; round++ {
		srv := serve(t, ctx, cfg)
		if round == 1 {
			createFolders(t, l, srv.addrs["imap"])
			l.start(seed)
		}
		d0, m0 := progress()
		tgt.set(srv.addrs)
		delay := minKill + time.Duration(rng.Int64N(int64(maxKill-minKill)))
		if round > crashKills {
			delay = lastRound
		}
		time.Sleep(delay)
		deadline := time.Now().Add(progressWait)
		for {
			d, m := progress()
			if d > d0 && m > m0 {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				t.Fatalf("round %d: %d deliveries and %d mailbox operations acknowledged in %v; want some of both\ncounts: %s\nerrors: %d\nserver stderr:\n%s",
					round, d-d0, m-m0, delay+progressWait, l.summary(), l.errors(), srv.stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if round <= crashKills {
			tgt.set(nil)
			srv.kill()
			d, m := progress()
			t.Logf("round %d: SIGKILL after %v; %d deliveries and %d mailbox operations acknowledged in the round", round, delay, d-d0, m-m0)
			continue
		}
		// The last round: the clients end their sessions, the mailboxes
		// are read back with the server up, then it stops gracefully.
		stopLoad()
		l.wait()
		l.report(t)
		v := verify(t, l, srv.addrs["imap"], srv.addrs["pop3"])
		tgt.set(nil)
		srv.terminate(t)
		t.Logf("%s; %s", l.summary(), v)
	}
	if out := loft(t, ctx, "", "check", "--config", cfg); !strings.HasPrefix(out, "ok") {
		t.Errorf("loft check: %q, want ok", out)
	}
	if ctx.Err() != nil {
		t.Errorf("the test ran out of its %v budget", crashBudget)
	}
	t.Logf("%v in all", time.Since(began).Round(time.Millisecond))
}
