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
