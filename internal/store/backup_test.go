package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// mailboxState is what IMAP and POP3 clients see of a mailbox and rely on
// not to change across a restore: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and
// each message's UID, modseq, flags and bytes (a POP3 UIDL is
// UIDVALIDITY.UID).
func mailboxState(t *testing.T, s *Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	accounts, err := s.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, a := range accounts {
		_, hash, err := s.PasswordHash(ctx, a.Address)
		if err != nil {
			t.Fatal(err)
		}
		out[a.Address] = fmt.Sprintf("quota %d default %v usage %d messages %d hash %s",
			a.Quota, a.QuotaIsDefault, a.Usage, a.Messages, hash)
		mbs, err := s.Mailboxes(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, mb := range mbs {
			key := a.Address + " " + mb.Name
			out[key] = fmt.Sprintf("uidvalidity %d uidnext %d highestmodseq %d special %q subscribed %v",
				mb.UIDValidity, mb.UIDNext, mb.HighestModSeq, mb.SpecialUse, mb.Subscribed)
			ms, err := s.Messages(ctx, a.ID, mb.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				out[fmt.Sprintf("%s %d", key, m.UID)] = fmt.Sprintf("modseq %d date %d size %d flags %v body %q",
					m.ModSeq, m.InternalDate.Unix(), m.Size, m.Flags, readBody(t, s, m.Blob))
			}
		}
	}
	return out
}

func diffStates(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: %s missing; want %s", what, k, w)
		} else if g != w {
			t.Errorf("%s: %s is %s; want %s", what, k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s should not be there: %s", what, k, g)
		}
	}
}

func backup(t *testing.T, s *Store, opts BackupOptions) *BackupResult {
	t.Helper()
	res, err := s.Backup(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// restoreTo restores from into a new data directory and opens it.
func restoreTo(t *testing.T, from string) *Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	res, err := Restore(context.Background(), RestoreOptions{From: from, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Check.Problems) > 0 || res.Check.Unreferenced > 0 {
		t.Errorf("check after restore: %q, %d unreferenced", res.Check.Problems, res.Check.Unreferenced)
	}
	s, err := Open(context.Background(), Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestBackupRestoresEverything backs up a store with several accounts,
// mailboxes, flags, expunges, a shared body and an own quota, and restores
// it: every account, mailbox and message is the same, to the UIDVALIDITY,
// modseq and byte; the next UIDVALIDITY handed out is new; and the
// restored store is consistent.
func TestBackupRestoresEverything(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	s := fx.s
	q := int64(123456)
	if err := s.SetQuota(ctx, "bob@example.org", &q); err != nil {
		t.Fatal(err)
	}
	mb := inbox(t, s, fx.alice)
	if _, err := s.StoreFlags(ctx, fx.alice.ID, mb.ID, []uint32{1, 2}, FlagsAdd, []string{`\Seen`, "$Label1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, fx.alice.ID, mb.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMailbox(ctx, fx.alice.ID, "Projects/Loft", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, fx.alice.ID, "Projects/Loft", strings.NewReader("Subject: filed\r\n\r\nappended\r\n"),
		AppendOptions{Flags: []string{`\Flagged`}}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir(), "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "tls", "selfsigned.key"), []byte("KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := mailboxState(t, s)

	// Copied, as to another filesystem; TestBackupIsIncremental links.
	res := backup(t, s, BackupOptions{Dir: filepath.Join(t.TempDir(), "backups"), copy: true})
	if res.Accounts != 3 || res.Messages != 5 || res.Bodies != 4 || res.Snapshots != 1 {
		t.Errorf("backup: %+v, want 3 accounts, 5 messages, 4 bodies, 1 snapshot", res)
	}
	if res.Copied != 4 || res.CopiedBytes == 0 || res.Linked != 0 || res.Reused != 0 {
		t.Errorf("backup: %d linked, %d copied (%d bytes), %d reused; want 4 copied", res.Linked, res.Copied, res.CopiedBytes, res.Reused)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	rres, err := Restore(ctx, RestoreOptions{From: filepath.Dir(res.Dir), Dir: dir, copy: true})
	if err != nil {
		t.Fatal(err)
	}
	if rres.From != res.Dir || rres.Bodies != 4 || rres.Copied != 4 || len(rres.Check.Problems) > 0 {
		t.Errorf("restore: %+v, check %+v", rres, rres.Check)
	}
	r, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	diffStates(t, "restored", mailboxState(t, r), want)
	if b, err := os.ReadFile(filepath.Join(r.Dir(), "tls", "selfsigned.key")); err != nil || string(b) != "KEY" {
		t.Errorf("restored certificate key: %q, %v", b, err)
	}
	// A mailbox made after the restore must not reuse a UIDVALIDITY.
	ra, err := r.Account(ctx, "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	nm, err := r.CreateMailbox(ctx, ra.ID, "New", "")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if strings.Contains(v, fmt.Sprintf("uidvalidity %d ", nm.UIDValidity)) {
			t.Errorf("new mailbox got UIDVALIDITY %d, already used by %s", nm.UIDValidity, k)
		}
	}
	// And the restored store takes mail.
	if res := deliver(t, r, "Subject: after\r\n\r\nrestored\r\n", "alice@example.org"); res[0].Err != nil || res[0].UID != 4 {
		t.Errorf("delivery after restore: %+v, want uid 4", res[0])
	}
	checkClean(t, r)

	if _, err := Restore(ctx, RestoreOptions{From: res.Dir, Dir: r.Dir()}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a used data directory: %v, want a refusal", err)
	}
}

// TestBackupIsIncremental takes two backups with mail delivered and
// expunged between them: the second shares every unchanged body with the
// first (the same file), saves only the new one, and each generation
// restores to the store as of its own moment, also after the other is
// deleted.
func TestBackupIsIncremental(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	s := fx.s
	root := filepath.Join(t.TempDir(), "backups")
	state1 := mailboxState(t, s)
	first := backup(t, s, BackupOptions{Dir: root})

	mb := inbox(t, s, fx.alice)
	if _, err := s.Expunge(ctx, fx.alice.ID, mb.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	deliver(t, s, "Subject: five\r\n\r\nnew since the first backup\r\n", "bob@example.org")
	state2 := mailboxState(t, s)
	second := backup(t, s, BackupOptions{Dir: root})
	if second.Reused != 3 || second.Linked+second.Copied != 1 || second.Bodies != 4 {
		t.Errorf("second backup: %d reused, %d linked, %d copied of %d bodies; want 3 reused and 1 new of 4",
			second.Reused, second.Linked, second.Copied, second.Bodies)
	}
	shared := 0
	for _, id := range []string{fx.blobOf(t, fx.alice, 2), fx.blobOf(t, fx.alice, 3), fx.blobOf(t, fx.bob, 2)} {
		a, err1 := os.Stat(filepath.Join(first.Dir, backupBlobPath(id)))
		b, err2 := os.Stat(filepath.Join(second.Dir, backupBlobPath(id)))
		if err1 != nil || err2 != nil {
			t.Fatalf("body %s: %v, %v", id, err1, err2)
		}
		if os.SameFile(a, b) {
			shared++
		}
	}
	if shared != 3 {
		t.Errorf("%d of 3 unchanged bodies are the same file in both generations", shared)
	}
	gens, err := BackupGenerations(root)
	if err != nil || len(gens) != 2 || gens[0] != first.Dir || gens[1] != second.Dir {
		t.Fatalf("generations %q, %v; want %s then %s", gens, err, first.Dir, second.Dir)
	}

	diffStates(t, "first generation", mailboxState(t, restoreTo(t, first.Dir)), state1)
	diffStates(t, "newest generation", mailboxState(t, restoreTo(t, root)), state2)
	if err := os.RemoveAll(first.Dir); err != nil {
		t.Fatal(err)
	}
	diffStates(t, "newest generation without the first", mailboxState(t, restoreTo(t, root)), state2)

	// An interrupted backup leaves a partial generation that is neither
	// restored nor kept.
	partial := filepath.Join(root, "20000101T000000Z"+partialSuffix)
	if err := os.MkdirAll(filepath.Join(partial, backupBlobs), 0o700); err != nil {
		t.Fatal(err)
	}
	third := backup(t, s, BackupOptions{Dir: root})
	if third.Reused != 4 {
		t.Errorf("third backup reused %d bodies, want 4", third.Reused)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("partial generation still there: %v", err)
	}
}

// TestBackupRetakesSnapshotWhenBodyVanishes forces the race the design
// guards against: a message delivered after the bodies were pinned is in
// the snapshot, and is expunged (its file removed) before the backup can
// save its body. The backup must take a new snapshot, which no longer has
// it, rather than write a snapshot referring to a body it does not have.
func TestBackupRetakesSnapshotWhenBodyVanishes(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	s := fx.s
	var late DeliverResult
	opts := BackupOptions{
		Dir: filepath.Join(t.TempDir(), "backups"),
		beforeSnapshot: func(attempt int) {
			if attempt == 1 {
				late = deliver(t, s, "Subject: late\r\n\r\nin the snapshot, not pinned\r\n", "alice@example.org")[0]
			}
		},
		afterSnapshot: func(attempt int) {
			if attempt == 1 {
				if _, err := s.Expunge(ctx, late.AccountID, late.MailboxID, []uint32{late.UID}); err != nil {
					t.Error(err)
				}
			}
		},
	}
	res := backup(t, s, opts)
	if res.Snapshots != 2 {
		t.Errorf("%d snapshots, want 2", res.Snapshots)
	}
	diffStates(t, "restored", mailboxState(t, restoreTo(t, res.Dir)), mailboxState(t, s))
}

// TestBackupDuringDeliveryLoad backs up (three times, incrementally) while
// deliveries, flag changes and expunges go on, and holds each restored
// store against an oracle: the change feed tells, per mailbox, what each
// modseq changed, so the state as of the snapshot is that after every
// change up to the restored HIGHESTMODSEQ. The restored mailboxes must
// equal it, to the UID, flags and bytes, with the same UIDVALIDITY; must
// hold every message acknowledged before the backup started; and must
// pass the check.
func TestBackupDuringDeliveryLoad(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Unlimited)
	const accounts = 3
	var accts []*Account
	var subs []*Subscription
	for i := range accounts {
		a := addAccount(t, s, fmt.Sprintf("user%d@example.org", i), nil)
		accts = append(accts, a)
		sub := s.Subscribe(a.ID)
		defer sub.Close()
		subs = append(subs, sub)
	}

	// bodies[mailboxID][uid] is what was delivered there.
	var mu sync.Mutex
	bodies := map[int64]map[uint32]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := accts[rng.IntN(accounts)]
				msg := fmt.Sprintf("Subject: w%d m%d\r\n\r\n%s\r\n", w, i, strings.Repeat("body ", rng.IntN(2000)))
				res, err := s.Deliver(ctx, strings.NewReader(msg), DeliverOptions{Recipients: []string{a.Address}})
				if err != nil || res[0].Err != nil {
					t.Errorf("deliver: %v %v", err, res)
					return
				}
				mu.Lock()
				if bodies[res[0].MailboxID] == nil {
					bodies[res[0].MailboxID] = map[uint32]string{}
				}
				bodies[res[0].MailboxID][res[0].UID] = msg
				mu.Unlock()
				switch rng.IntN(4) {
				case 0: // expunge the oldest, as a POP3 client would
					uids, err := s.UIDs(ctx, a.ID, res[0].MailboxID)
					if err == nil && len(uids) > 5 {
						_, err = s.Expunge(ctx, a.ID, res[0].MailboxID, uids[:1+rng.IntN(3)])
					}
					if err != nil {
						t.Error(err)
						return
					}
				case 1:
					flags := [][]string{{`\Seen`}, {`\Flagged`, "$Work"}, {`\Answered`}}[rng.IntN(3)]
					if _, err := s.StoreFlags(ctx, a.ID, res[0].MailboxID, []uint32{res[0].UID}, FlagsAdd, flags); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	// Let the load get going, then back up under it.
	time.Sleep(200 * time.Millisecond)
	type taken struct {
		res   *BackupResult
		start map[int64]int64 // HIGHESTMODSEQ per mailbox when the backup started
	}
	var backups []taken
	root := filepath.Join(t.TempDir(), "backups")
	for range 3 {
		start := map[int64]int64{}
		for _, a := range accts {
			mb := inbox(t, s, a)
			start[mb.ID] = mb.HighestModSeq
		}
		backups = append(backups, taken{backup(t, s, BackupOptions{Dir: root}), start})
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}

	// The oracle: every change of every INBOX, in modseq order.
	changes := map[int64][]Change{}
	for _, sub := range subs {
		for _, c := range sub.Changes() {
			changes[c.MailboxID] = append(changes[c.MailboxID], c)
		}
	}
	stateAt := func(mailboxID, modseq int64) map[uint32]string {
		msgs := map[uint32][]string{}
		for _, c := range changes[mailboxID] {
			if c.ModSeq > modseq {
				break
			}
			switch c.Kind {
			case ChangeNew, ChangeFlags:
				msgs[c.UID] = c.Flags
			case ChangeExpunge:
				for _, u := range c.UIDs {
					delete(msgs, u)
				}
			}
		}
		out := map[uint32]string{}
		for uid, flags := range msgs {
			out[uid] = fmt.Sprint(flags)
		}
		return out
	}

	for i, b := range backups {
		if b.res.Reused == 0 && i > 0 {
			t.Errorf("backup %d reused no body of the previous one", i+1)
		}
		r := restoreTo(t, b.res.Dir)
		total := 0
		for _, a := range accts {
			orig := inbox(t, s, a)
			ra, err := r.Account(ctx, a.Address)
			if err != nil {
				t.Fatal(err)
			}
			rmb := inbox(t, r, ra)
			if rmb.UIDValidity != orig.UIDValidity {
				t.Errorf("backup %d, %s: UIDVALIDITY %d, want %d", i+1, a.Address, rmb.UIDValidity, orig.UIDValidity)
			}
			if rmb.HighestModSeq < b.start[orig.ID] {
				t.Errorf("backup %d, %s: HIGHESTMODSEQ %d is before the backup started (%d): acknowledged changes are missing",
					i+1, a.Address, rmb.HighestModSeq, b.start[orig.ID])
			}
			want := stateAt(orig.ID, rmb.HighestModSeq)
			ms, err := r.Messages(ctx, ra.ID, rmb.ID)
			if err != nil {
				t.Fatal(err)
			}
			got := map[uint32]string{}
			for _, m := range ms {
				got[m.UID] = fmt.Sprint(m.Flags)
				if body := readBody(t, r, m.Blob); body != bodies[orig.ID][m.UID] {
					t.Errorf("backup %d, %s uid %d: restored body differs from the one delivered", i+1, a.Address, m.UID)
				}
			}
			total += len(ms)
			uids := slices.Sorted(func(yield func(uint32) bool) {
				for u := range want {
					if !yield(u) {
						return
					}
				}
			})
			for _, u := range uids {
				if got[u] != want[u] {
					t.Errorf("backup %d, %s uid %d: restored flags %q, want %q as of modseq %d",
						i+1, a.Address, u, got[u], want[u], rmb.HighestModSeq)
				}
			}
			for u := range got {
				if _, ok := want[u]; !ok {
					t.Errorf("backup %d, %s: uid %d restored, but not in the mailbox as of modseq %d",
						i+1, a.Address, u, rmb.HighestModSeq)
				}
			}
		}
		t.Logf("backup %d: %d messages, %d bodies (%d reused, %d linked, %d copied), %d snapshots",
			i+1, total, b.res.Bodies, b.res.Reused, b.res.Linked, b.res.Copied, b.res.Snapshots)
		if int64(total) != b.res.Messages {
			t.Errorf("backup %d: restored %d messages, the backup says %d", i+1, total, b.res.Messages)
		}
	}
	checkClean(t, s)
}
