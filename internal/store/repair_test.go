package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawDB opens the store's database beside the store, as an operator's
// sqlite3 would: foreign keys off, so that any damage can be made.
func rawDB(t *testing.T, s *Store) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir(), "loft.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// fixture is a small store: alice with three messages, bob with two, one
// of them shared with alice (one body, two messages).
type fixture struct {
	s          *Store
	db         *sql.DB
	alice, bob *Account
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := openTest(t, Unlimited)
	fx := &fixture{s: s, db: rawDB(t, s)}
	fx.alice = addAccount(t, s, "alice@example.org", nil)
	fx.bob = addAccount(t, s, "bob@example.org", nil)
	addAccount(t, s, "postmaster@example.org", nil)
	deliver(t, s, "Subject: one\r\n\r\nfirst\r\n", "alice@example.org")
	deliver(t, s, "Subject: two\r\n\r\nsecond, to both\r\n", "alice@example.org", "bob@example.org")
	deliver(t, s, "Subject: three\r\n\r\nthird\r\n", "alice@example.org")
	deliver(t, s, "Subject: four\r\n\r\nfourth\r\n", "bob@example.org")
	checkClean(t, s)
	return fx
}

// blobOf returns the body id of a message.
func (fx *fixture) blobOf(t *testing.T, a *Account, uid uint32) string {
	t.Helper()
	for _, m := range fx.messages(t, a, "INBOX") {
		if m.UID == uid {
			return m.Blob
		}
	}
	t.Fatalf("%s has no uid %d", a.Address, uid)
	return ""
}

func (fx *fixture) messages(t *testing.T, a *Account, mailbox string) []MessageInfo {
	t.Helper()
	mb, err := fx.s.Mailbox(context.Background(), a.ID, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := fx.s.Messages(context.Background(), a.ID, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// contents maps "address mailbox uid" to flags and body bytes of every
// message of the store: what a repair must not lose.
func contents(t *testing.T, s *Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	accounts, err := s.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, a := range accounts {
		mbs, err := s.Mailboxes(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, mb := range mbs {
			ms, err := s.Messages(ctx, a.ID, mb.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				body := "(no body)"
				if f, err := s.OpenBody(m.Blob); err == nil {
					b, _ := io.ReadAll(f)
					f.Close()
					body = string(b)
				}
				out[fmt.Sprintf("%s %s %d", a.Address, mb.Name, m.UID)] = fmt.Sprintf("%v %q", m.Flags, body)
			}
		}
	}
	return out
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if strings.Contains(l, want) {
			return true
		}
	}
	return false
}

// TestCheckFindsAndRepairFixesInjectedFaults damages a store in one way
// per case, the way real damage or a bug would leave it, and checks that
// Check reports it in one line, changes nothing, and that Repair fixes it
// and says so, with no message lost (but those whose content was lost
// before the repair), after which Check is clean.
func TestCheckFindsAndRepairFixesInjectedFaults(t *testing.T) {
	cases := []struct {
		name string
		// inject damages the store; it returns the keys of contents()
		// that the repair may remove (their content is lost already).
		inject      func(t *testing.T, fx *fixture) (lost []string)
		wantProblem string
		wantRepair  string
	}{
		{
			name: "missing body file",
			inject: func(t *testing.T, fx *fixture) []string {
				id := fx.blobOf(t, fx.alice, 3)
				if err := os.Remove(fx.s.blobs.Path(id)); err != nil {
					t.Fatal(err)
				}
				return []string{"alice@example.org INBOX 3"}
			},
			wantProblem: `account alice@example.org, mailbox "INBOX", uid 3: its body file`,
			wantRepair:  `account alice@example.org, mailbox "INBOX": expunged uid 3, whose body file`,
		},
		{
			name: "missing file of a shared body",
			inject: func(t *testing.T, fx *fixture) []string {
				if err := os.Remove(fx.s.blobs.Path(fx.blobOf(t, fx.bob, 1))); err != nil {
					t.Fatal(err)
				}
				return []string{"alice@example.org INBOX 2", "bob@example.org INBOX 1"}
			},
			wantProblem: `account bob@example.org, mailbox "INBOX", uid 1: its body file`,
			wantRepair:  `account alice@example.org, mailbox "INBOX": expunged uid 2`,
		},
		{
			name: "orphan body file",
			inject: func(t *testing.T, fx *fixture) []string {
				w, err := fx.s.blobs.Create()
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(w, "Subject: orphan\r\n\r\nlost row\r\n")
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
				old := time.Now().Add(-2 * orphanGrace)
				if err := os.Chtimes(fx.s.blobs.Path(w.ID), old, old); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			wantProblem: "belongs to no message (repair: moved to lost+found)",
			wantRepair:  `that belonged to no message to account postmaster@example.org, mailbox "lost+found", uid 1`,
		},
		{
			name: "body row without messages",
			inject: func(t *testing.T, fx *fixture) []string {
				id := fx.blobOf(t, fx.alice, 1)
				mustExec(t, fx.db, `DELETE FROM messages WHERE blob = ?`, id)
				mustExec(t, fx.db, `UPDATE accounts SET messages = messages - 1,
					usage = usage - (SELECT size FROM bodies WHERE blob = ?) WHERE id = ?`, id, fx.alice.ID)
				return nil
			},
			wantProblem: "is recorded but belongs to no message",
			wantRepair:  `moved body `,
		},
		{
			name: "wrong usage",
			inject: func(t *testing.T, fx *fixture) []string {
				mustExec(t, fx.db, `UPDATE accounts SET usage = usage + 1000 WHERE id = ?`, fx.alice.ID)
				return nil
			},
			wantProblem: "account alice@example.org: usage",
			wantRepair:  "account alice@example.org: usage",
		},
		{
			name: "wrong message count",
			inject: func(t *testing.T, fx *fixture) []string {
				mustExec(t, fx.db, `UPDATE accounts SET messages = 300 WHERE id = ?`, fx.bob.ID)
				return nil
			},
			wantProblem: "account bob@example.org: message count 300, but it has 2",
			wantRepair:  "message count 300 to 2",
		},
		{
			name: "wrong sent date",
			inject: func(t *testing.T, fx *fixture) []string {
				mustExec(t, fx.db, `UPDATE messages SET sent = 7 WHERE blob = ?`, fx.blobOf(t, fx.bob, 2))
				return nil
			},
			wantProblem: `account bob@example.org, mailbox "INBOX", uid 2: its body index row or sent date differs`,
			wantRepair:  `account bob@example.org, mailbox "INBOX", uid 2: body index row and sent date set`,
		},
		{
			name: "wrong mailbox counts",
			inject: func(t *testing.T, fx *fixture) []string {
				mustExec(t, fx.db, `UPDATE mailboxes SET unseen = 7, size = size + 3 WHERE account_id = ? AND name = 'INBOX'`, fx.alice.ID)
				return nil
			},
			wantProblem: `account alice@example.org, mailbox "INBOX": counts (messages, size, unseen, deleted) are [3 `,
			wantRepair:  `account alice@example.org, mailbox "INBOX": counts (messages, size, unseen, deleted) [3 `,
		},
		{
			// The UNIQUE constraint keeps two messages from sharing a
			// UID; what can break is UIDNEXT falling to or below a UID in
			// use, so that the next delivery would reuse it.
			name: "uid not below uidnext",
			inject: func(t *testing.T, fx *fixture) []string {
				mustExec(t, fx.db, `UPDATE mailboxes SET uidnext = 2 WHERE account_id = ? AND name = 'INBOX'`, fx.alice.ID)
				return nil
			},
			wantProblem: `account alice@example.org, mailbox "INBOX": uid 3 is not below UIDNEXT 2`,
			wantRepair:  `account alice@example.org, mailbox "INBOX": raised UIDNEXT from 2 to 4`,
		},
		{
			name: "expunged uid not below uidnext",
			inject: func(t *testing.T, fx *fixture) []string {
				mb := inbox(t, fx.s, fx.bob)
				mustExec(t, fx.db, `INSERT INTO expunged(mailbox_id, uid, modseq) VALUES (?, 9, 2)`, mb.ID)
				return nil
			},
			wantProblem: "expunged uid 9 is not below UIDNEXT 3",
			wantRepair:  "raised UIDNEXT from 3 to 10",
		},
		{
			name: "modseq above highestmodseq",
			inject: func(t *testing.T, fx *fixture) []string {
				mustExec(t, fx.db, `UPDATE mailboxes SET highestmodseq = 1 WHERE account_id = ? AND name = 'INBOX'`, fx.alice.ID)
				return nil
			},
			wantProblem: "above HIGHESTMODSEQ 1",
			wantRepair:  "raised HIGHESTMODSEQ from 1 to",
		},
		{
			name: "message size differs from its body",
			inject: func(t *testing.T, fx *fixture) []string {
				mustExec(t, fx.db, `UPDATE messages SET size = size + 5 WHERE blob = ?`, fx.blobOf(t, fx.bob, 2))
				mustExec(t, fx.db, `UPDATE accounts SET usage = usage + 5 WHERE id = ?`, fx.bob.ID)
				return nil
			},
			wantProblem: `account bob@example.org, mailbox "INBOX", uid 2: size`,
			wantRepair:  `account bob@example.org, mailbox "INBOX", uid 2: size`,
		},
		{
			name: "uidvalidity counter behind",
			inject: func(t *testing.T, fx *fixture) []string {
				mustExec(t, fx.db, `UPDATE meta SET value = 5 WHERE key = 'uidvalidity'`)
				return nil
			},
			wantProblem: "UIDVALIDITY counter 5 is below",
			wantRepair:  "raised the UIDVALIDITY counter from 5",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			fx := newFixture(t)
			lost := tc.inject(t, fx)
			before := contents(t, fx.s)

			rep, err := fx.s.Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !hasLine(rep.Problems, tc.wantProblem) {
				t.Fatalf("check: problems %q, want one with %q", rep.Problems, tc.wantProblem)
			}
			for _, p := range rep.Problems {
				if strings.Contains(p, "\n") {
					t.Errorf("problem is not one line: %q", p)
				}
			}
			if after := contents(t, fx.s); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("check changed the store:\nbefore %v\nafter  %v", before, after)
			}

			rep, err = fx.s.Repair(ctx, CheckOptions{LostFound: "postmaster@example.org"})
			if err != nil {
				t.Fatal(err)
			}
			if !hasLine(rep.Repairs, tc.wantRepair) {
				t.Fatalf("repair: did %q, want a line with %q", rep.Repairs, tc.wantRepair)
			}
			after := contents(t, fx.s)
			for k, v := range before {
				if after[k] != v && !hasLine(lost, k) {
					t.Errorf("repair lost or changed %s: was %s, now %q", k, v, after[k])
				}
			}
			for _, k := range lost {
				if _, ok := after[k]; ok {
					t.Errorf("repair kept %s, whose body is missing", k)
				}
			}
			checkClean(t, fx.s)
			// Delivery still works and gets a fresh UID.
			res := deliver(t, fx.s, "Subject: after\r\n\r\nafter repair\r\n", "alice@example.org")
			if res[0].Err != nil {
				t.Fatal(res[0].Err)
			}
			checkClean(t, fx.s)
		})
	}
}

// TestRepairPutsOrphanInLostFound checks the orphan's journey: a young
// orphan beside a possibly running server is a delivery in flight and left
// alone; an old one, or any on a stopped store, becomes a message with the
// file's exact bytes in postmaster's lost+found, and its SHA-256 recorded.
func TestRepairPutsOrphanInLostFound(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	body := "Subject: orphan\r\n\r\nwhose row was lost\r\n"
	w, err := fx.s.blobs.Create()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, body)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}

	rep, err := fx.s.Repair(ctx, CheckOptions{LostFound: "postmaster@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Unreferenced != 1 || hasLine(rep.Repairs, "moved") {
		t.Fatalf("young orphan beside a server: %+v, want it counted as unreferenced and left alone", rep)
	}
	rep, err = fx.s.CheckWith(ctx, CheckOptions{Stopped: true})
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(rep.Problems, w.ID+" ("+fmt.Sprint(len(body))+" bytes") {
		t.Fatalf("stopped store: problems %q, want the orphan %s", rep.Problems, w.ID)
	}
	rep, err = fx.s.Repair(ctx, CheckOptions{Stopped: true})
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(rep.Repairs, "left 1 bodies that belong to no message") {
		t.Fatalf("repair without a lost+found account: %q", rep.Repairs)
	}
	rep, err = fx.s.Repair(ctx, CheckOptions{Stopped: true, LostFound: "nobody@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(rep.Repairs, "no account nobody@example.org") {
		t.Fatalf("repair with an unknown lost+found account: %q", rep.Repairs)
	}
	if _, err := os.Stat(fx.s.blobs.Path(w.ID)); err != nil {
		t.Fatalf("the orphan was not kept: %v", err)
	}

	rep, err = fx.s.Repair(ctx, CheckOptions{Stopped: true, LostFound: "Bob@Example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(rep.Repairs, "moved body file "+w.ID) {
		t.Fatalf("repair: %q", rep.Repairs)
	}
	ms := fx.messages(t, fx.bob, LostFound)
	if len(ms) != 1 || ms[0].UID != 1 || ms[0].Blob != w.ID || ms[0].Size != int64(len(body)) {
		t.Fatalf("bob's lost+found: %+v", ms)
	}
	if got := readBody(t, fx.s, w.ID); got != body {
		t.Errorf("adopted body %q, want %q", got, body)
	}
	st, err := fx.s.Structure(ctx, w.ID)
	if err != nil || st == nil {
		t.Errorf("structure of the adopted body: %v", err)
	}
	var sum []byte
	if err := fx.db.QueryRow(`SELECT sha256 FROM bodies WHERE blob = ?`, w.ID).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256([]byte(body)); string(sum) != string(want[:]) {
		t.Errorf("recorded sha256 %x, want %x", sum, want)
	}
	checkClean(t, fx.s)
}

// TestCheckVerifiesContent has repair record the SHA-256 of bodies stored
// without one (by an older Loft), then damages one body
// keeping its size and truncates another: check reports both, and repair
// leaves them (nothing can restore their bytes) without removing mail.
func TestCheckVerifiesContent(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	// As stored by a Loft from before hashes were kept.
	mustExec(t, fx.db, `UPDATE bodies SET sha256 = NULL`)
	checkClean(t, fx.s)
	rep, err := fx.s.Repair(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(rep.Repairs, "recorded the SHA-256 of 4 bodies") {
		t.Fatalf("repair of a store without hashes: %q", rep.Repairs)
	}
	var unhashed int
	fx.db.QueryRow(`SELECT count(*) FROM bodies WHERE sha256 IS NULL`).Scan(&unhashed)
	if unhashed != 0 {
		t.Fatalf("%d bodies without a hash after repair", unhashed)
	}
	checkClean(t, fx.s)

	flipped := fx.blobOf(t, fx.alice, 1)
	path := fx.s.blobs.Path(flipped)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x20
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	truncated := fx.blobOf(t, fx.bob, 2)
	if err := os.Truncate(fx.s.blobs.Path(truncated), 4); err != nil {
		t.Fatal(err)
	}
	before := contents(t, fx.s)
	for _, run := range []func() (*Report, error){
		func() (*Report, error) { return fx.s.Check(ctx) },
		func() (*Report, error) { return fx.s.Repair(ctx, CheckOptions{LostFound: "postmaster@example.org"}) },
	} {
		rep, err := run()
		if err != nil {
			t.Fatal(err)
		}
		if !hasLine(rep.Problems, "body "+flipped+": content differs from its recorded SHA-256") {
			t.Errorf("problems %q, want the flipped byte in %s", rep.Problems, flipped)
		}
		if !hasLine(rep.Problems, "body "+truncated+": recorded size") {
			t.Errorf("problems %q, want the truncation of %s", rep.Problems, truncated)
		}
		if len(rep.Repairs) != 0 {
			t.Errorf("repairs %q, want none", rep.Repairs)
		}
	}
	if after := contents(t, fx.s); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("repair changed a store whose only damage is not repairable")
	}
}

// TestCheckBesideLiveTraffic runs checks while deliveries, flag changes
// and expunges go on: what a delivery or an expunge in flight explains is
// not a problem, so every check must be clean.
func TestCheckBesideLiveTraffic(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "live@example.org", nil)
	mb := inbox(t, s, a)
	// A repair records the new bodies' hashes, so that the checks read
	// bodies while they may vanish; it must find nothing else to do.
	repair := func() {
		rep, err := s.Repair(ctx, CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Repairs {
			if !strings.HasPrefix(r, "recorded the SHA-256") {
				t.Errorf("repair beside live traffic: %s", r)
			}
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				msg := fmt.Sprintf("Subject: w%d m%d\r\n\r\n%s\r\n", w, i, strings.Repeat("x", 100*i%5000))
				if _, err := s.Deliver(ctx, strings.NewReader(msg), DeliverOptions{Recipients: []string{a.Address}}); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					uids, err := s.UIDs(ctx, a.ID, mb.ID)
					if err != nil {
						t.Error(err)
						return
					}
					if len(uids) > 2 {
						if _, err := s.Expunge(ctx, a.ID, mb.ID, uids[:2]); err != nil {
							t.Error(err)
							return
						}
						if _, err := s.StoreFlags(ctx, a.ID, mb.ID, uids[2:3], FlagsAdd, []string{`\Seen`}); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	checks := 0
	for time.Now().Before(deadline) {
		repair()
		rep, err := s.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rep.Problems {
			t.Errorf("check %d beside live traffic: %s", checks, p)
		}
		checks++
	}
	close(stop)
	wg.Wait()
	if checks < 3 {
		t.Errorf("only %d checks ran", checks)
	}
	checkClean(t, s)
}

// TestDeliveryRecordsBodyHash: every body stored by delivery and APPEND
// has its SHA-256 recorded, the one Check verifies.
func TestDeliveryRecordsBodyHash(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@example.org", nil)
	body := "Subject: hashed\r\n\r\nbody\r\n"
	deliver(t, s, body, a.Address)
	if _, err := s.Append(context.Background(), a.ID, "Sent", strings.NewReader(body), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.db.Query(`SELECT sha256 FROM bodies`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := sha256.Sum256([]byte(body))
	n := 0
	for rows.Next() {
		var sum []byte
		if err := rows.Scan(&sum); err != nil {
			t.Fatal(err)
		}
		if string(sum) != string(want[:]) {
			t.Errorf("recorded sha256 %x, want %x", sum, want)
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d bodies, want 2", n)
	}
}
