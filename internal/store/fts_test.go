package store

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func indexRows(t *testing.T, s *Store) (meta, fts int) {
	t.Helper()
	if err := s.db.QueryRow(`SELECT count(*) FROM body_index`).Scan(&meta); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow(`SELECT count(*) FROM body_fts`).Scan(&fts); err != nil {
		t.Fatal(err)
	}
	return meta, fts
}

func searchUIDs(t *testing.T, s *Store, acct, mbox int64, field TextField, text string) []uint32 {
	t.Helper()
	res, err := s.SearchText(context.Background(), acct, mbox, field, text)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unindexed) > 0 {
		t.Fatalf("unindexed: %v", res.Unindexed)
	}
	return res.Matches
}

// TestTextIndexSharedByCopiesGoesWithLastExpunge: the index rows are the
// body's, shared by its copies, and go when the last message using the
// body is expunged.
func TestTextIndexSharedByCopiesGoesWithLastExpunge(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@example.org", nil)
	deliver(t, s, "Subject: Grüße\r\nFrom: x@example.org\r\n\r\nThe quick brown fox\r\n", "a@example.org")
	inbox, _ := s.Mailbox(ctx, a.ID, "INBOX")
	arch, _ := s.Mailbox(ctx, a.ID, "Archive")
	if _, err := s.CopyMessages(ctx, a.ID, inbox.ID, []uint32{1}, "Archive"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IndexPending(ctx); err != nil {
		t.Fatal(err)
	}
	if m, f := indexRows(t, s); m != 1 || f != 1 {
		t.Fatalf("rows after copy: %d %d, want 1 1", m, f)
	}
	for _, mb := range []int64{inbox.ID, arch.ID} {
		if got := searchUIDs(t, s, a.ID, mb, TextBody, "ick bro"); !slices.Equal(got, []uint32{1}) {
			t.Errorf("mailbox %d: %v", mb, got)
		}
		if got := searchUIDs(t, s, a.ID, mb, TextHeader, "grüße"); !slices.Equal(got, []uint32{1}) {
			t.Errorf("mailbox %d header: %v", mb, got)
		}
	}
	if _, err := s.Expunge(ctx, a.ID, inbox.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if m, f := indexRows(t, s); m != 1 || f != 1 {
		t.Fatalf("rows after first expunge: %d %d, want 1 1", m, f)
	}
	if got := searchUIDs(t, s, a.ID, arch.ID, TextAll, "fox"); !slices.Equal(got, []uint32{1}) {
		t.Errorf("copy after expunge: %v", got)
	}
	if _, err := s.Expunge(ctx, a.ID, arch.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if m, f := indexRows(t, s); m != 0 || f != 0 {
		t.Fatalf("rows after last expunge: %d %d, want 0 0", m, f)
	}
}

// TestReindexRebuildsAndFallsBack: bodies without index rows are answered
// from their files (as unindexed, sort keys and previews computed), and
// Reindex brings them back.
func TestReindexRebuildsAndFallsBack(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@example.org", nil)
	addAccount(t, s, "b@example.org", nil)
	deliver(t, s, "Subject: Re: [x] Plans\r\nFrom: Zoë <z@example.org>\r\nMessage-ID: <1@x>\r\n\r\nHello there,\r\n> quoted\r\nsee you\r\n-- \r\nsig\r\n", "a@example.org")
	deliver(t, s, "Subject: other\r\nIn-Reply-To: <1@x> (yes)\r\nContent-Type: text/html\r\n\r\n<p>Caf&eacute; <b>ouvert</b></p>\r\n", "a@example.org", "b@example.org")
	inbox, _ := s.Mailbox(ctx, a.ID, "INBOX")
	if _, err := s.IndexPending(ctx); err != nil {
		t.Fatal(err)
	}
	if got := searchUIDs(t, s, a.ID, inbox.ID, TextAll, "ouvert"); !slices.Equal(got, []uint32{2}) {
		t.Errorf("indexed: %v", got)
	}
	check := func(when string) {
		t.Helper()
		info, err := s.SortInfo(ctx, a.ID, inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(info) != 2 || info[0].Subject != "PLANS" || !info[0].Reply || info[0].DisplayFrom != "ZOE\u0308" ||
			info[0].MessageID != "<1@x>" || !slices.Equal(info[1].References, []string{"<1@x>"}) {
			t.Errorf("%s: sort info %+v", when, info)
		}
		msgs, _ := s.Messages(ctx, a.ID, inbox.ID)
		for i, want := range []string{"Hello there, see you", "Café ouvert"} {
			if p, err := s.Preview(ctx, msgs[i].Blob); err != nil || p != want {
				t.Errorf("%s: preview %d = %q, %v; want %q", when, i+1, p, err, want)
			}
		}
	}
	check("indexed")
	err := s.write(ctx, func(t *txn) error {
		if _, err := t.exec(`DELETE FROM body_fts`); err != nil {
			return err
		}
		_, err := t.exec(`DELETE FROM body_index`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Rows go missing only in a database from before the index, which a
	// store opens afresh: forget what this one learnt (textcache.go).
	s.texts = newTextCoverage()
	res, err := s.SearchText(ctx, a.ID, inbox.ID, TextBody, "café")
	if err != nil || len(res.Matches) != 0 || !slices.Equal(res.Unindexed, []uint32{1, 2}) {
		t.Fatalf("without rows: %+v %v", res, err)
	}
	check("unindexed")
	r, err := s.Reindex(ctx, "B@example.org")
	if err != nil || r.Bodies != 1 {
		t.Fatalf("reindex b: %+v %v", r, err)
	}
	if _, err := s.Reindex(ctx, "nobody@example.org"); err == nil {
		t.Error("reindex of no account: no error")
	}
	r, err = s.Reindex(ctx, "")
	if err != nil || r.Bodies != 2 {
		t.Fatalf("reindex all: %+v %v", r, err)
	}
	if m, f := indexRows(t, s); m != 2 || f != 2 {
		t.Fatalf("rows: %d %d", m, f)
	}
	if got := searchUIDs(t, s, a.ID, inbox.ID, TextBody, "café"); !slices.Equal(got, []uint32{2}) {
		t.Errorf("after reindex: %v", got)
	}
	check("reindexed")
}

// TestHugeTextSearchedFromFile: a body with more text than the index
// takes is searched by reading it, with the same answers.
func TestHugeTextSearchedFromFile(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Unlimited)
	a := addAccount(t, s, "a@example.org", nil)
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("0123456789", 99)+"\r\n", 1100) + "needle\r\n"
	deliver(t, s, big, "a@example.org")
	if _, err := s.IndexPending(ctx); err != nil {
		t.Fatal(err)
	}
	if m, f := indexRows(t, s); m != 1 || f != 0 {
		t.Fatalf("rows %d %d, want 1 0", m, f)
	}
	inbox, _ := s.Mailbox(ctx, a.ID, "INBOX")
	res, err := s.SearchText(ctx, a.ID, inbox.ID, TextBody, "needle")
	if err != nil || len(res.Matches) != 0 || !slices.Equal(res.Unindexed, []uint32{1}) {
		t.Fatalf("search: %+v %v", res, err)
	}
	if r, err := s.Reindex(ctx, ""); err != nil || r.Bodies != 1 {
		t.Fatalf("reindex: %+v %v", r, err)
	}
	if m, f := indexRows(t, s); m != 1 || f != 0 {
		t.Fatalf("rows after reindex %d %d, want 1 0", m, f)
	}
}
