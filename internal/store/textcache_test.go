package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestSearchTextCoverageFollowsChanges: with the coverage cache, SearchText
// answers exactly (matches, plus the unindexed messages for the caller to
// read) as messages arrive unindexed, get indexed, are expunged and
// copied, for a rare string (candidates first) and a common one (the
// mailbox's messages first).
func TestSearchTextCoverageFollowsChanges(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	other := addAccount(t, s, "b@example.org", nil)
	body := map[uint32]string{} // INBOX's messages by UID
	next := uint32(1)
	add := func(n int) {
		t.Helper()
		for range n {
			text := fmt.Sprintf("common words in message %d", next)
			if next%5 == 0 {
				text += " and a rare needle"
			}
			// Every message also goes to another account: candidates of
			// other mailboxes must not count.
			deliver(t, s, "Subject: m\r\n\r\n"+text+"\r\n", "a@example.org", "b@example.org")
			body[next] = text
			next++
		}
	}
	mb := inbox(t, s, a)
	check := func(when string) {
		t.Helper()
		for _, word := range []string{"needle", "common"} {
			var want []uint32
			for uid, text := range body {
				if strings.Contains(text, word) {
					want = append(want, uid)
				}
			}
			slices.Sort(want)
			res, err := s.SearchText(ctx, a.ID, mb.ID, TextBody, word)
			if err != nil {
				t.Fatal(err)
			}
			// The caller reads the unindexed messages: what it would find.
			got := slices.Clone(res.Matches)
			for _, uid := range res.Unindexed {
				if _, ok := body[uid]; !ok {
					t.Errorf("%s, %q: unindexed UID %d is not in the mailbox", when, word, uid)
				}
				if strings.Contains(body[uid], word) {
					got = append(got, uid)
				}
				if slices.Contains(res.Matches, uid) {
					t.Errorf("%s, %q: UID %d both matched and unindexed", when, word, uid)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s, %q: got %v, want %v", when, word, got, want)
			}
		}
	}
	indexAll := func() {
		t.Helper()
		if _, err := s.IndexPending(ctx); err != nil {
			t.Fatal(err)
		}
	}

	add(20)
	check("delivered, not indexed")
	indexAll()
	check("indexed")
	if res, _ := s.SearchText(ctx, a.ID, mb.ID, TextBody, "needle"); len(res.Unindexed) != 0 {
		t.Errorf("indexed: still unindexed %v", res.Unindexed)
	}
	add(7)
	check("more delivered")
	if _, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{5, 6, 21}); err != nil {
		t.Fatal(err)
	}
	delete(body, 5)
	delete(body, 6)
	delete(body, 21)
	check("expunged, some unindexed")
	indexAll()
	check("all indexed again")
	if _, err := s.CopyMessages(ctx, a.ID, mb.ID, []uint32{10, 11}, "INBOX"); err != nil {
		t.Fatal(err)
	}
	body[next], body[next+1] = body[10], body[11]
	next += 2
	check("copies")
	// The other account's mailbox has its own answers.
	if got := searchUIDs(t, s, other.ID, inbox(t, s, other).ID, TextBody, "needle"); len(got) != 5 {
		t.Errorf("other account: %v, want 5 matches", got)
	}
	// Nor does an account find anything in a mailbox not its own.
	for _, word := range []string{"needle", "common", "co"} {
		if got := searchUIDs(t, s, other.ID, mb.ID, TextBody, word); len(got) != 0 {
			t.Errorf("other account in a's INBOX, %q: %v, want none", word, got)
		}
	}
}

// TestSearchTextAfterReindexElsewhere: a reindex gives bodies new index
// rows; a search after it, with the pairs cached before, still finds
// every message, also when the reindex ran in another process (the
// CLI beside the server), whose cache this process never sees.
func TestSearchTextAfterReindexElsewhere(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := addAccount(t, s, "a@example.org", nil)
	for i := range 6 {
		deliver(t, s, fmt.Sprintf("Subject: m\r\n\r\nneedle number %d\r\n", i), "a@example.org")
	}
	if _, err := s.IndexPending(ctx); err != nil {
		t.Fatal(err)
	}
	mb := inbox(t, s, a)
	want := []uint32{1, 2, 3, 4, 5, 6}
	if got := searchUIDs(t, s, a.ID, mb.ID, TextBody, "needle"); !slices.Equal(got, want) {
		t.Fatalf("before: %v", got)
	}
	// The CLI's store: same data directory, its own caches.
	cli, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Reindex(ctx, ""); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	for _, word := range []string{"needle", "number 3"} {
		got := searchUIDs(t, s, a.ID, mb.ID, TextBody, word)
		if word == "needle" && !slices.Equal(got, want) || word == "number 3" && !slices.Equal(got, []uint32{4}) {
			t.Errorf("after another process's reindex, %q: %v", word, got)
		}
	}
	if _, err := s.Reindex(ctx, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if got := searchUIDs(t, s, a.ID, mb.ID, TextAll, "needle"); !slices.Equal(got, want) {
		t.Errorf("after this process's reindex: %v", got)
	}
}

// TestCoverageCacheBound: the pairs of all entries stay under the bound,
// the least recently used mailbox going first; a mailbox above it alone
// keeps none and is searched by the join, with the same answers.
func TestCoverageCacheBound(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	s.texts.maxPairs = 10
	a := addAccount(t, s, "a@example.org", nil)
	for i := range 6 {
		deliver(t, s, fmt.Sprintf("Subject: m\r\n\r\nneedle %d\r\n", i), "a@example.org")
	}
	in := inbox(t, s, a)
	if _, err := s.CopyMessages(ctx, a.ID, in.ID, []uint32{1, 2, 3, 4, 5, 6}, "Archive"); err != nil {
		t.Fatal(err)
	}
	arch, err := s.Mailbox(ctx, a.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.IndexPending(ctx); err != nil {
		t.Fatal(err)
	}
	want := []uint32{1, 2, 3, 4, 5, 6}
	for _, mb := range []int64{in.ID, arch.ID, in.ID} {
		if got := searchUIDs(t, s, a.ID, mb, TextBody, "needle"); !slices.Equal(got, want) {
			t.Errorf("mailbox %d: %v", mb, got)
		}
		s.texts.mu.Lock()
		if s.texts.pairs > 10 || len(s.texts.entries) != 1 {
			t.Errorf("after mailbox %d: %d pairs in %d entries, want at most 10 in 1", mb, s.texts.pairs, len(s.texts.entries))
		}
		s.texts.mu.Unlock()
	}
	// Eleven messages: too many for the cache alone.
	for i := range 5 {
		deliver(t, s, fmt.Sprintf("Subject: m\r\n\r\nneedle %d\r\n", 6+i), "a@example.org")
	}
	if _, err := s.IndexPending(ctx); err != nil {
		t.Fatal(err)
	}
	if got := searchUIDs(t, s, a.ID, in.ID, TextBody, "needle"); len(got) != 11 {
		t.Errorf("above the bound: %v", got)
	}
	s.texts.mu.Lock()
	e := s.texts.entries[coverageKey{a.ID, in.ID}]
	s.texts.mu.Unlock()
	if e == nil || !e.noPairs || e.pairs != nil {
		t.Errorf("a mailbox above the bound keeps pairs")
	}
}

// TestCoverageDropsStalePairs: pairs of expunged messages are filtered
// from answers, and an entry holding more than twice its mailbox's
// messages is dropped and read afresh.
func TestCoverageDropsStalePairs(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	in := inbox(t, s, a)
	var uids []uint32
	for i := range 1100 {
		deliver(t, s, fmt.Sprintf("Subject: m\r\n\r\nneedle %d\r\n", i), "a@example.org")
		uids = append(uids, uint32(i+1))
	}
	if _, err := s.IndexPending(ctx); err != nil {
		t.Fatal(err)
	}
	if got := searchUIDs(t, s, a.ID, in.ID, TextBody, "needle"); len(got) != 1100 {
		t.Fatalf("%d matches", len(got))
	}
	if _, err := s.Expunge(ctx, a.ID, in.ID, uids[:1090]); err != nil {
		t.Fatal(err)
	}
	got := searchUIDs(t, s, a.ID, in.ID, TextBody, "needle")
	if !slices.Equal(got, uids[1090:]) {
		t.Fatalf("after the expunge: %v", got)
	}
	s.texts.mu.Lock()
	_, kept := s.texts.entries[coverageKey{a.ID, in.ID}]
	s.texts.mu.Unlock()
	if kept {
		t.Errorf("the entry with 1,100 pairs for 10 messages was kept")
	}
	if got := searchUIDs(t, s, a.ID, in.ID, TextBody, "needle"); !slices.Equal(got, uids[1090:]) {
		t.Fatalf("read afresh: %v", got)
	}
}
