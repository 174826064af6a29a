package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func openTest(t *testing.T, defaultQuota int64) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Dir: t.TempDir(), DefaultQuota: defaultQuota})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addAccount(t *testing.T, s *Store, addr string, quota *int64) *Account {
	t.Helper()
	a, err := s.CreateAccount(context.Background(), addr, "hash", quota)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func deliver(t *testing.T, s *Store, msg string, rcpts ...string) []DeliverResult {
	t.Helper()
	res, err := s.Deliver(context.Background(), strings.NewReader(msg), DeliverOptions{Recipients: rcpts})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func inbox(t *testing.T, s *Store, a *Account) *Mailbox {
	t.Helper()
	mb, err := s.Mailbox(context.Background(), a.ID, "inbox")
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

func readBody(t *testing.T, s *Store, id string) string {
	t.Helper()
	f, err := s.OpenBody(id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAccountHasDefaultMailboxes(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "Alice@Example.org", nil)
	if a.Address != "alice@example.org" {
		t.Errorf("address %q, want lower-case", a.Address)
	}
	mbs, err := s.Mailboxes(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range mbs {
		got[m.Name] = m.SpecialUse
		if m.UIDNext != 1 || m.UIDValidity == 0 {
			t.Errorf("%s: uidnext %d uidvalidity %d", m.Name, m.UIDNext, m.UIDValidity)
		}
	}
	for _, d := range DefaultMailboxes {
		if su, ok := got[d.Name]; !ok || su != d.SpecialUse {
			t.Errorf("mailbox %s: present %v special-use %q, want %q", d.Name, ok, su, d.SpecialUse)
		}
	}
	if _, err := s.CreateAccount(context.Background(), "ALICE@example.org", "h", nil); !errors.Is(err, ErrAccountExists) {
		t.Errorf("duplicate account: %v", err)
	}
}

func TestDeliverStoresByteExact(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@example.org", nil)
	long := strings.Repeat("x", 5000)
	msg := "From: a@b\r\nSubject: caf\xc3\xa9 \xff\r\nBroken header line\r\n\r\n" + long + "\r\n8-bit: \xe9\xe8\r\n"
	res := deliver(t, s, msg, "A@example.org")
	if res[0].Err != nil || res[0].UID != 1 {
		t.Fatalf("result %+v", res[0])
	}
	msgs, err := s.Messages(context.Background(), a.ID, inbox(t, s, a).ID)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("messages %v %v", msgs, err)
	}
	if got := readBody(t, s, msgs[0].Blob); got != msg {
		t.Errorf("body differs: %d bytes, want %d", len(got), len(msg))
	}
	if msgs[0].Size != int64(len(msg)) {
		t.Errorf("size %d, want %d", msgs[0].Size, len(msg))
	}
	a, _ = s.AccountByID(context.Background(), a.ID)
	if a.Usage != int64(len(msg)) || a.Messages != 1 {
		t.Errorf("usage %d messages %d", a.Usage, a.Messages)
	}
	if _, err := s.Structure(context.Background(), msgs[0].Blob); err != nil {
		t.Errorf("structure: %v", err)
	}
}

func TestDeliverBareLFIsStoredWithCRLF(t *testing.T) {
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@example.org", nil)
	deliver(t, s, "Subject: x\n\nline1\nline2\r\n", "a@example.org")
	msgs, _ := s.Messages(context.Background(), a.ID, inbox(t, s, a).ID)
	want := "Subject: x\r\n\r\nline1\r\nline2\r\n"
	if got := readBody(t, s, msgs[0].Blob); got != want || msgs[0].Size != int64(len(want)) {
		t.Errorf("got %q size %d, want %q", got, msgs[0].Size, want)
	}
}

func TestDeliverUnknownRecipient(t *testing.T) {
	s := openTest(t, Unlimited)
	addAccount(t, s, "a@example.org", nil)
	res := deliver(t, s, "Subject: x\r\n\r\n", "nobody@example.org", "a@example.org")
	if !errors.Is(res[0].Err, ErrNoAccount) || res[1].Err != nil {
		t.Errorf("results %v / %v", res[0].Err, res[1].Err)
	}
}

func TestQuota(t *testing.T) {
	s := openTest(t, 100)
	ctx := context.Background()
	full := addAccount(t, s, "full@example.org", nil)
	open := addAccount(t, s, "open@example.org", nil)
	msg := strings.Repeat("a", 60)
	if res := deliver(t, s, msg, "full@example.org"); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if err := s.CheckQuota(ctx, "full@example.org", 41); !errors.Is(err, ErrOverQuota) {
		t.Errorf("CheckQuota 60+41 of 100: %v", err)
	}
	if err := s.CheckQuota(ctx, "full@example.org", 40); err != nil {
		t.Errorf("CheckQuota 60+40 of 100: %v", err)
	}
	// One full and one open mailbox in one delivery: the open one gets it.
	res := deliver(t, s, msg, "full@example.org", "open@example.org")
	if !errors.Is(res[0].Err, ErrOverQuota) || res[1].Err != nil {
		t.Fatalf("results %v / %v", res[0].Err, res[1].Err)
	}
	// A quota change applies to the next delivery.
	big := int64(1000)
	if err := s.SetQuota(ctx, "FULL@example.org", &big); err != nil {
		t.Fatal(err)
	}
	if res := deliver(t, s, msg, "full@example.org"); res[0].Err != nil {
		t.Errorf("after raising the quota: %v", res[0].Err)
	}
	a, _ := s.AccountByID(ctx, full.ID)
	if a.Quota != 1000 || a.QuotaIsDefault || a.Usage != 120 {
		t.Errorf("account %+v", a)
	}
	b, _ := s.AccountByID(ctx, open.ID)
	if b.Quota != 100 || !b.QuotaIsDefault {
		t.Errorf("default quota: %+v", b)
	}
	// An exactly full mailbox takes nothing more.
	exact := int64(120)
	s.SetQuota(ctx, "full@example.org", &exact)
	if err := s.CheckQuota(ctx, "full@example.org", 0); !errors.Is(err, ErrOverQuota) {
		t.Errorf("exactly full: %v", err)
	}
}

func TestExpungeFreesSpaceAndRemembersUIDs(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	b := addAccount(t, s, "b@example.org", nil)
	// One body shared by two accounts: expunging one copy keeps the file.
	deliver(t, s, "Subject: shared\r\n\r\nx\r\n", "a@example.org", "b@example.org")
	deliver(t, s, "Subject: two\r\n\r\nyy\r\n", "a@example.org")
	mb := inbox(t, s, a)
	msgs, _ := s.Messages(ctx, a.ID, mb.ID)
	gone, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{1, 2, 99})
	if err != nil || !slices.Equal(gone, []uint32{1, 2}) {
		t.Fatalf("expunge: %v %v", gone, err)
	}
	if _, err := os.Stat(s.blobs.Path(msgs[1].Blob)); !os.IsNotExist(err) {
		t.Errorf("unshared body still on disk: %v", err)
	}
	bmsgs, _ := s.Messages(ctx, b.ID, inbox(t, s, b).ID)
	if readBody(t, s, bmsgs[0].Blob) != "Subject: shared\r\n\r\nx\r\n" {
		t.Error("shared body lost")
	}
	a, _ = s.AccountByID(ctx, a.ID)
	if a.Usage != 0 || a.Messages != 0 {
		t.Errorf("usage %d messages %d after expunge", a.Usage, a.Messages)
	}
	var n int
	s.db.QueryRow(`SELECT count(*) FROM expunged WHERE mailbox_id = ?`, mb.ID).Scan(&n)
	if n != 2 {
		t.Errorf("expunge records: %d", n)
	}
	mb2 := inbox(t, s, a)
	if mb2.UIDNext != 3 || mb2.HighestModSeq <= mb.HighestModSeq {
		t.Errorf("uidnext %d modseq %d -> %d", mb2.UIDNext, mb.HighestModSeq, mb2.HighestModSeq)
	}
	// UIDs are never reused.
	if res := deliver(t, s, "x\r\n", "a@example.org"); res[0].UID != 3 {
		t.Errorf("new uid %d, want 3", res[0].UID)
	}
	checkClean(t, s)
}

func TestStoreFlags(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	deliver(t, s, "x\r\n", "a@example.org")
	mb := inbox(t, s, a)
	up, err := s.StoreFlags(ctx, a.ID, mb.ID, []uint32{1}, FlagsAdd, []string{`\seen`, "$Label1", "$label1"})
	if err != nil || len(up) != 1 || !slices.Equal(up[0].Flags, []string{`\Seen`, "$Label1"}) {
		t.Fatalf("add: %+v %v", up, err)
	}
	up, _ = s.StoreFlags(ctx, a.ID, mb.ID, []uint32{1}, FlagsAdd, []string{`\Seen`})
	if len(up) != 0 {
		t.Errorf("no-op store reported %+v", up)
	}
	up, _ = s.StoreFlags(ctx, a.ID, mb.ID, []uint32{1}, FlagsRemove, []string{"$LABEL1"})
	if len(up) != 1 || !slices.Equal(up[0].Flags, []string{`\Seen`}) {
		t.Errorf("remove: %+v", up)
	}
	if _, err := s.StoreFlags(ctx, a.ID+1, mb.ID, []uint32{1}, FlagsAdd, []string{`\Seen`}); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("other account's mailbox: %v", err)
	}
}

func TestFeedDeliversChangesInOrder(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	other := addAccount(t, s, "b@example.org", nil)
	sub := s.Subscribe(a.ID)
	defer sub.Close()
	osub := s.Subscribe(other.ID)
	defer osub.Close()
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < n/4; j++ {
				deliver(t, s, "x\r\n", "a@example.org")
			}
		}()
	}
	wg.Wait()
	mb := inbox(t, s, a)
	s.StoreFlags(ctx, a.ID, mb.ID, []uint32{1}, FlagsAdd, []string{`\Seen`})
	s.Expunge(ctx, a.ID, mb.ID, []uint32{2})
	<-sub.Ready()
	changes := sub.Changes()
	if len(changes) != n+2 {
		t.Fatalf("%d changes, want %d", len(changes), n+2)
	}
	var last int64
	for i, c := range changes {
		if c.ModSeq <= last {
			t.Errorf("change %d: modseq %d after %d", i, c.ModSeq, last)
		}
		last = c.ModSeq
		if i < n && (c.Kind != ChangeNew || c.UID != uint32(i+1)) {
			t.Errorf("change %d: %+v", i, c)
		}
	}
	if changes[n].Kind != ChangeFlags || changes[n+1].Kind != ChangeExpunge {
		t.Errorf("last changes %+v %+v", changes[n], changes[n+1])
	}
	if got := osub.Changes(); len(got) != 0 {
		t.Errorf("other account saw %d changes", len(got))
	}
}

func TestConcurrentDeliveriesStayConsistent(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	var accts []*Account
	for i := 0; i < 3; i++ {
		accts = append(accts, addAccount(t, s, fmt.Sprintf("u%d@example.org", i), nil))
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 25; j++ {
				msg := fmt.Sprintf("Subject: %d-%d\r\n\r\nbody\r\n", g, j)
				res, err := s.Deliver(ctx, strings.NewReader(msg), DeliverOptions{
					Recipients: []string{fmt.Sprintf("u%d@example.org", (g+j)%3)}})
				if err != nil || res[0].Err != nil {
					t.Error(err, res)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, a := range accts {
		msgs, _ := s.Messages(ctx, a.ID, inbox(t, s, a).ID)
		for i, m := range msgs {
			if m.UID != uint32(i+1) {
				t.Fatalf("%s: uid %d at %d", a.Address, m.UID, i)
			}
		}
		total += len(msgs)
	}
	if total != 200 {
		t.Errorf("%d messages, want 200", total)
	}
	checkClean(t, s)
}

func TestRecoverRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	addAccount(t, s, "a@example.org", nil)
	deliver(t, s, "kept\r\n", "a@example.org")
	// A body written but never committed, and a partial write.
	w, _ := s.blobs.Create()
	w.Write([]byte("orphan"))
	w.Commit()
	w2, _ := s.blobs.Create()
	w2.Write(make([]byte, 100<<10)) // more than the buffer: some reaches the file
	s.Close()

	s, err = Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rep, _ := s.Check(ctx); rep.Unreferenced != 2 {
		t.Errorf("before recover: %d unreferenced", rep.Unreferenced)
	}
	n, err := s.Recover(ctx)
	if err != nil || n != 2 {
		t.Errorf("recover removed %d (%v), want 2", n, err)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "blobs", "*", "*"))
	if len(matches) != 1 {
		t.Errorf("files left: %v", matches)
	}
	a, _ := s.Account(ctx, "a@example.org")
	msgs, _ := s.Messages(ctx, a.ID, inbox(t, s, a).ID)
	if len(msgs) != 1 || readBody(t, s, msgs[0].Blob) != "kept\r\n" {
		t.Errorf("committed message damaged: %v", msgs)
	}
	checkClean(t, s)
}

// TestRecoverRemovesOnlyOrphansAmongMany: Recover reads the referenced
// bodies as one set; among hundreds of bodies (shared by two recipients and
// by copies, some freed by expunges) and orphans in several buckets, it
// removes exactly the orphans, and a second run finds nothing.
func TestRecoverRemovesOnlyOrphansAmongMany(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	a := addAccount(t, s, "a@example.org", nil)
	addAccount(t, s, "b@example.org", nil)
	for i := range 300 {
		rcpts := []string{"a@example.org"}
		if i%3 == 0 {
			rcpts = append(rcpts, "b@example.org")
		}
		deliver(t, s, fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i), rcpts...)
	}
	in := inbox(t, s, a)
	var copied, expunged []uint32
	for uid := uint32(1); uid <= 300; uid++ {
		switch uid % 10 {
		case 1:
			copied = append(copied, uid)
		case 2:
			expunged = append(expunged, uid)
		}
	}
	if _, err := s.CopyMessages(ctx, a.ID, in.ID, copied, "Archive"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, a.ID, in.ID, expunged); err != nil {
		t.Fatal(err)
	}
	var orphans []string
	for i := range 10 { // committed bodies whose metadata never was
		w, err := s.blobs.Create()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "orphan %d", i)
		w.Commit()
		orphans = append(orphans, w.ID)
	}
	for i := range 5 { // partial bodies, cut off mid-write
		w, err := s.blobs.Create()
		if err != nil {
			t.Fatal(err)
		}
		w.Write(bytes.Repeat([]byte{'p'}, 100<<10+i))
		orphans = append(orphans, w.ID)
	}
	old := filepath.Join(dir, "blobs", "00000001")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // left in an old hour's bucket
		id := fmt.Sprintf("00000001%024x", i)
		if err := os.WriteFile(filepath.Join(old, id), []byte("old orphan"), 0o600); err != nil {
			t.Fatal(err)
		}
		orphans = append(orphans, id)
	}
	s.Close()

	s, err = Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Recover(ctx); err != nil || n != len(orphans) {
		t.Fatalf("recover removed %d (%v), want %d", n, err, len(orphans))
	}
	for _, id := range orphans {
		if _, err := os.Stat(s.blobs.Path(id)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("orphan %s still there (%v)", id, err)
		}
	}
	total := 0
	for _, addr := range []string{"a@example.org", "b@example.org"} {
		acct, _ := s.Account(ctx, addr)
		mbs, _ := s.Mailboxes(ctx, acct.ID)
		for _, mb := range mbs {
			msgs, err := s.Messages(ctx, acct.ID, mb.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if !strings.HasPrefix(readBody(t, s, m.Blob), "Subject: ") {
					t.Errorf("%s %s UID %d: body damaged", addr, mb.Name, m.UID)
				}
			}
			total += len(msgs)
		}
	}
	if want := 300 - len(expunged) + len(copied) + 100; total != want {
		t.Errorf("%d messages after recover, want %d", total, want)
	}
	checkClean(t, s)
	if n, err := s.Recover(ctx); err != nil || n != 0 {
		t.Errorf("second recover removed %d (%v), want 0", n, err)
	}
}

func TestDeleteAccountFreesItsMail(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	sub := s.Subscribe(a.ID)
	defer sub.Close()
	deliver(t, s, "one\r\n", "a@example.org")
	deliver(t, s, "two\r\n", "a@example.org")
	if err := s.DeleteAccount(ctx, "A@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctx, "a@example.org"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("account still there: %v", err)
	}
	matches, _ := filepath.Glob(filepath.Join(s.dir, "blobs", "*", "*"))
	if len(matches) != 0 {
		t.Errorf("bodies left: %v", matches)
	}
	changes := sub.Changes()
	if len(changes) == 0 || changes[len(changes)-1].Kind != ChangeAccountDelete {
		t.Errorf("no account-delete change: %+v", changes)
	}
	if err := s.DeleteAccount(ctx, "a@example.org"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("second delete: %v", err)
	}
	checkClean(t, s)
}

func TestAppend(t *testing.T) {
	s := openTest(t, 50)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	res, err := s.Append(ctx, a.ID, "Sent", strings.NewReader("Subject: s\r\n\r\nhi\r\n"),
		AppendOptions{Flags: []string{`\Seen`, `\Draft`}})
	if err != nil || res.UID != 1 || res.UIDValidity == 0 {
		t.Fatalf("append: %+v %v", res, err)
	}
	if _, err := s.Append(ctx, a.ID, "Nope", strings.NewReader("x"), AppendOptions{}); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("append to missing mailbox: %v", err)
	}
	if _, err := s.Append(ctx, a.ID, "Sent", bytes.NewReader(make([]byte, 60)), AppendOptions{}); !errors.Is(err, ErrOverQuota) {
		t.Errorf("append over quota: %v", err)
	}
	checkClean(t, s)
}

func TestReopenKeepsSchemaAndData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addAccount(t, s, "a@example.org", nil)
	s.Close()
	s, err = Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	s.db.QueryRow(`PRAGMA user_version`).Scan(&v)
	if v != len(migrations) {
		t.Errorf("schema version %d, want %d", v, len(migrations))
	}
	if _, err := s.Account(ctx, "a@example.org"); err != nil {
		t.Error(err)
	}
}

func checkClean(t *testing.T, s *Store) {
	t.Helper()
	rep, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 || rep.Unreferenced > 0 {
		t.Errorf("check: %v, %d unreferenced", rep.Problems, rep.Unreferenced)
	}
}
