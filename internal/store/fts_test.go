package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
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
		info, err := s.SortInfo(ctx, a.ID, inbox.ID, SortAll)
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

// TestTrigramFoldIntoASCII checks, for every Unicode character, what
// trigramExact relies on: FTS5's trigram tokenizer, as body_fts uses it,
// folds a character that strings.ToLower leaves outside ASCII into ASCII
// only for the characters of foldedIntoASCII, so an ASCII phrase without
// those only matches ASCII text.
func TestTrigramFoldIntoASCII(t *testing.T) {
	if raceEnabled {
		t.Skip("minutes under -race, and the folding has nothing to race on: runs without -race")
	}
	s := openTest(t, Unlimited)
	ctx := context.Background()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE VIRTUAL TABLE temp.fold USING fts5(x, tokenize = 'trigram')`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `CREATE VIRTUAL TABLE temp.fold_terms USING fts5vocab(temp, fold, 'row')`); err != nil {
		t.Fatal(err)
	}
	// One row per 4,096 characters, each lower-cased and tripled, with
	// "\x01" between them: a trigram of the row is all ASCII only if a
	// character in it folded into ASCII.
	var doc strings.Builder
	flush := func() {
		if _, err := conn.ExecContext(ctx, `INSERT INTO temp.fold(x) VALUES (?)`, doc.String()); err != nil {
			t.Fatal(err)
		}
		doc.Reset()
	}
	for r := rune(utf8.RuneSelf); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		c := strings.ToLower(string(r))
		if c[0] < utf8.RuneSelf {
			continue // lower-cased into ASCII by Go already, as stored
		}
		doc.WriteString(c + c + c + "\x01")
		if r%4096 == 0 {
			flush()
		}
	}
	flush()
	rows, err := conn.QueryContext(ctx, `SELECT term FROM temp.fold_terms`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var term string
		if err := rows.Scan(&term); err != nil {
			t.Fatal(err)
		}
		n++
		ascii := true
		for _, c := range []byte(term) {
			ascii = ascii && c < utf8.RuneSelf
		}
		if ascii && strings.Trim(term, "\x01"+foldedIntoASCII) != "" {
			t.Errorf("a non-ASCII character folds into ASCII trigram %q, not in foldedIntoASCII", term)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 100_000 {
		t.Fatalf("only %d trigrams: the table was not filled", n)
	}
}

// TestSearchTextExactWithoutConfirming compares SearchText, for ASCII
// strings the trigram match answers alone, with strings.Contains on each
// message's text, over text that looks like ASCII but is not.
func TestSearchTextExactWithoutConfirming(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	bodies := []string{
		"kappa alpha", "KAPPA", "\u212aappa (kelvin)", "ſtop", "sto\u017f", "İstanbul istanbul", "ｋａｐｐａ",
		"kap pa", "ka\"ppa", "say \"kappa\" now", "k\u0301appa", "part one kap\r\n\r\npa two",
		"kapp", "café cafe", "x",
	}
	for i, b := range bodies {
		deliver(t, s, fmt.Sprintf("Subject: m%d\r\n\r\n%s\r\n", i, b), "a@example.org")
	}
	// One with the string in a header only, and one spread over header and body.
	deliver(t, s, "Subject: kappa here\r\n\r\nnothing\r\n", "a@example.org")
	deliver(t, s, "Subject: ka\r\n\r\nppa\r\n", "a@example.org")
	if _, err := s.IndexPending(ctx); err != nil {
		t.Fatal(err)
	}
	mb := inbox(t, s, a)
	texts := map[uint32][2]string{} // header, body of each UID, as stored
	rows, err := s.db.Query(`SELECT m.uid, f.header, f.body FROM messages m JOIN body_index i ON i.blob = m.blob
		JOIN body_fts f ON f.rowid = i.id WHERE m.mailbox_id = ?`, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var uid uint32
		var h, b string
		if err := rows.Scan(&uid, &h, &b); err != nil {
			t.Fatal(err)
		}
		texts[uid] = [2]string{h, b}
	}
	rows.Close()
	if len(texts) != len(bodies)+2 {
		t.Fatalf("%d indexed messages, want %d", len(texts), len(bodies)+2)
	}
	for _, q := range []string{"kappa", "appa", "stop", "istanbul", "kap pa", "ka\"ppa", "\"kappa\"", "kapp", "cafe",
		"a\r\n", "pa two", "ubject: kappa", "p\np", "sto"} {
		for _, field := range []TextField{TextBody, TextAll} {
			var want []uint32
			for uid, hb := range texts {
				if strings.Contains(hb[1], q) || field == TextAll && strings.Contains(hb[0], q) {
					want = append(want, uid)
				}
			}
			slices.Sort(want)
			if got := searchUIDs(t, s, a.ID, mb.ID, field, q); !slices.Equal(got, want) {
				t.Errorf("field %d, %q: got %v, want %v", field, q, got, want)
			}
		}
	}
}

// TestMessageRowsFollowBodyIndex: each message row carries its body's
// index row id and sent date (migration 8) through delivery, COPY, a
// reindex (new row ids) and a body stored without index rows, and the
// dates-only sort keys come from the rows alone.
func TestMessageRowsFollowBodyIndex(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	a := addAccount(t, s, "a@example.org", nil)
	deliver(t, s, "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\nSubject: dated\r\n\r\nx\r\n", "a@example.org")
	deliver(t, s, "Subject: undated\r\n\r\ny\r\n", "a@example.org")
	in := inbox(t, s, a)
	if _, err := s.CopyMessages(ctx, a.ID, in.ID, []uint32{1}, "Archive"); err != nil {
		t.Fatal(err)
	}
	type row struct {
		bodyID, sent sql.NullInt64
		date         int64
	}
	rowOf := func(mailbox int64, uid uint32) row {
		t.Helper()
		var r row
		if err := s.db.QueryRow(`SELECT body_id, sent, internal_date FROM messages WHERE mailbox_id = ? AND uid = ?`,
			mailbox, uid).Scan(&r.bodyID, &r.sent, &r.date); err != nil {
			t.Fatal(err)
		}
		return r
	}
	arch, err := s.Mailbox(ctx, a.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	const dated = 1057049557 // 2003-07-01 08:52:37 UTC
	r1, r2, rc := rowOf(in.ID, 1), rowOf(in.ID, 2), rowOf(arch.ID, 1)
	if !r1.bodyID.Valid || r1.sent.Int64 != dated || r2.sent.Int64 != r2.date || rc != r1 {
		t.Fatalf("rows %+v %+v, copy %+v", r1, r2, rc)
	}
	keys, err := s.SortInfo(ctx, a.ID, in.ID, SortDates)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Sent != dated || keys[1].Sent != r2.date || keys[0].bodyID != r1.bodyID.Int64 {
		t.Fatalf("sort keys %+v", keys)
	}
	if _, err := s.Reindex(ctx, ""); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := s.db.QueryRow(`SELECT i.id FROM body_index i JOIN messages m ON m.blob = i.blob WHERE m.mailbox_id = ? AND m.uid = 1`,
		in.ID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if r := rowOf(in.ID, 1); id == r1.bodyID.Int64 || r.bodyID.Int64 != id || r.sent.Int64 != dated || rowOf(arch.ID, 1).bodyID.Int64 != id {
		t.Fatalf("after reindex: body row %d, message rows %+v %+v", id, r, rowOf(arch.ID, 1))
	}
	// A body without index rows (stored before they existed): NULL, and
	// its keys come from its file.
	mustExec(t, s.db, `DELETE FROM body_index WHERE id = ?`, id)
	if r := rowOf(in.ID, 1); r.bodyID.Valid || r.sent.Valid {
		t.Fatalf("without index rows: %+v", r)
	}
	s.sorts = newSortCache()
	if keys, err = s.SortInfo(ctx, a.ID, in.ID, SortAll); err != nil || keys[0].Sent != dated || keys[0].Subject != "DATED" {
		t.Fatalf("keys from the file: %+v, %v", keys, err)
	}
	checkClean(t, s)
}
