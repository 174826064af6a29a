package store

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

func TestZZExp(t *testing.T) {
	dir := os.Getenv("EXP_DIR")
	if dir == "" {
		t.Skip()
	}
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acct, err := s.Account(ctx, "a@x")
	if err != nil {
		acct, err = s.CreateAccount(ctx, "a@x", "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile("/tmp/lb/bench.mbox")
		var msgs [][]byte
		for _, m := range bytes.Split(data, []byte("\nFrom ")) {
			if i := bytes.IndexByte(m, '\n'); i >= 0 {
				msgs = append(msgs, bytes.ReplaceAll(m[i+1:], []byte("\n"), []byte("\r\n")))
			}
		}
		t0 := time.Now()
		var wg sync.WaitGroup
		ch := make(chan []byte)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for m := range ch {
					s.Deliver(ctx, bytes.NewReader(m), DeliverOptions{Recipients: []string{"a@x"}})
				}
			}()
		}
		for _, m := range msgs {
			ch <- m
		}
		close(ch)
		wg.Wait()
		t.Logf("delivered %d in %v", len(msgs), time.Since(t0))
	}
	mb, _ := s.Mailbox(ctx, acct.ID, "INBOX")
	for _, q := range []string{"invoice", "größe", "straße", "привет", "ch", "uick bro"} {
		t0 := time.Now()
		res, err := s.SearchText(ctx, acct.ID, mb.ID, TextBody, q)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%q: %d in %v", q, len(res.Matches), time.Since(t0))
	}
}

func TestZZOpt(t *testing.T) {
	dir := os.Getenv("EXP_DIR")
	if dir == "" {
		t.Skip()
	}
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	s.db.QueryRow(`SELECT count(*) FROM body_fts_data`).Scan(&n)
	t.Logf("data rows %d", n)
	t0 := time.Now()
	if _, err := s.db.Exec(`INSERT INTO body_fts(body_fts) VALUES ('optimize')`); err != nil {
		t.Fatal(err)
	}
	t.Logf("optimize %v", time.Since(t0))
	acct, _ := s.Account(ctx, "a@x")
	mb, _ := s.Mailbox(ctx, acct.ID, "INBOX")
	for _, q := range []string{"invoice", "größe", "straße", "привет", "ch", "uick bro", "postmortem", "zzzzz"} {
		t0 := time.Now()
		res, err := s.SearchText(ctx, acct.ID, mb.ID, TextBody, q)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%q: %d in %v", q, len(res.Matches), time.Since(t0))
	}
	for _, q := range []string{`body : "invoice"`, `body : "zzzzz"`, `body : "postmortem"`} {
		t0 := time.Now()
		var c int
		s.db.QueryRow(`SELECT count(*) FROM body_fts WHERE body_fts MATCH ?`, q).Scan(&c)
		t.Logf("raw %q: %d in %v", q, c, time.Since(t0))
	}
}

func TestZZPlan(t *testing.T) {
	dir := os.Getenv("EXP_DIR")
	if dir == "" {
		t.Skip()
	}
	ctx := context.Background()
	s, _ := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	defer s.Close()
	acct, _ := s.Account(ctx, "a@x")
	mb, _ := s.Mailbox(ctx, acct.ID, "INBOX")
	for _, q := range []string{
		`SELECT m.uid, f.header FROM messages m JOIN body_index i ON i.blob = m.blob JOIN body_fts f ON f.rowid = i.id
		WHERE m.mailbox_id = ?2 AND EXISTS (SELECT 1 FROM mailboxes b WHERE b.id = ?2 AND b.account_id = ?3) AND i.id IN (SELECT rowid FROM body_fts WHERE body_fts MATCH ?4 AND instr(body, ?1) > 0) ORDER BY m.uid`,
		`SELECT m.uid, f.header FROM body_fts f CROSS JOIN body_index i ON i.id = f.rowid CROSS JOIN messages m ON m.blob = i.blob
		WHERE body_fts MATCH ?4 AND instr(f.body, ?1) > 0 AND m.mailbox_id = ?2 AND EXISTS (SELECT 1 FROM mailboxes b WHERE b.id = ?2 AND b.account_id = ?3) ORDER BY m.uid`,
	} {
		rows, _ := s.db.Query("EXPLAIN QUERY PLAN "+q, "invoice", mb.ID, acct.ID, `body : "invoice"`)
		for rows.Next() {
			var a, b, c int
			var d string
			rows.Scan(&a, &b, &c, &d)
			t.Log(d)
		}
		rows.Close()
		t0 := time.Now()
		rows, err := s.db.Query(q, "invoice", mb.ID, acct.ID, `body : "invoice"`)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		t.Logf("%d in %v", n, time.Since(t0))
	}
}

func TestZZParts(t *testing.T) {
	dir := os.Getenv("EXP_DIR")
	if dir == "" {
		t.Skip()
	}
	ctx := context.Background()
	s, _ := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	defer s.Close()
	for _, q := range []string{
		`SELECT rowid FROM body_fts WHERE body_fts MATCH ?2`,
		`SELECT rowid FROM body_fts WHERE body_fts MATCH ?2 AND instr(body, ?1) > 0`,
		`SELECT rowid, length(body) FROM body_fts WHERE body_fts MATCH ?2`,
		`SELECT rowid FROM body_fts WHERE instr(body, ?1) > 0`,
		`SELECT f.rowid FROM body_index i JOIN body_fts f ON f.rowid = i.id WHERE instr(f.body, ?1) > 0`,
	} {
		t0 := time.Now()
		rows, err := s.db.Query(q, "invoice", `body : "invoice"`)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		t.Logf("%d in %v: %s", n, time.Since(t0), q)
	}
}

func TestZZCost(t *testing.T) {
	dir := os.Getenv("EXP_DIR")
	if dir == "" {
		t.Skip()
	}
	ctx := context.Background()
	s, _ := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	defer s.Close()
	blobs, _ := s.column(ctx, `SELECT blob FROM bodies`)
	var idx []*bodyIndex
	t0 := time.Now()
	tot := 0
	for _, b := range blobs {
		bi, err := s.analyzeBlob(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		idx = append(idx, bi)
		tot += len(bi.text) + len(bi.header)
	}
	t.Logf("analyze %d: %v, %d bytes of text", len(blobs), time.Since(t0), tot)
	db := s.wdb
	db.Exec(`CREATE VIRTUAL TABLE IF NOT EXISTS zz USING fts5(header, body, tokenize='trigram')`)
	t0 = time.Now()
	tx, _ := db.Begin()
	for i, bi := range idx {
		tx.Exec(`INSERT INTO zz(rowid, header, body) VALUES (?, ?, ?)`, i+1, bi.header, bi.text)
	}
	tx.Commit()
	t.Logf("fts insert: %v", time.Since(t0))
	db.Exec(`DROP TABLE zz`)
}
