// The text index: what SEARCH, SORT, THREAD and PREVIEW need of a body.
// body_index holds the sort and thread keys and the preview, computed at
// delivery and stored in the same transaction as the body's row; body_fts
// (SQLite FTS5, trigram tokens) holds the decoded, lower-case header and
// text, added just after by the store's indexer (textIndexer), so that a
// substring search narrows to candidates with the index and confirms
// with instr() on the same decoded text. Rows are keyed by blob, since
// copies share a body, and go with the body's row (a trigger, whoever
// deletes it). Bodies without text rows yet, or without any (stored
// before the index existed, or by a repair), are answered from their
// files, and `loft reindex` rebuilds them all.
package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"loft/internal/message"
)

// bodyIndex is a body's row of body_index and body_fts.
type bodyIndex struct {
	header, text string // body_fts: decoded, lower-case
	preview      string
	sent         sql.NullInt64 // Date: in unix seconds, RFC 5256 §2.2
	subject      string        // base subject, collation key
	reply        bool
	from, to, cc string // addr-mailbox of the first address, collation keys
	displayFrom  string // RFC 5957 display values, collation keys
	displayTo    string
	messageID    string
	refs         string // space-separated
}

// analyzeBody computes the index rows of the message msg parsed from r;
// without withText, all but the text of body_fts (header and text empty),
// which is what a delivery stores (insertBodyIndex without withText) and
// costs a fraction of decoding every part.
func analyzeBody(r io.ReaderAt, msg *message.Message, withText bool) (*bodyIndex, error) {
	extract := message.ExtractText
	if !withText {
		extract = message.ExtractPreview
	}
	txt, err := extract(r, msg)
	if err != nil {
		return nil, err
	}
	env := &msg.Envelope
	b := &bodyIndex{
		header:      txt.Header,
		text:        txt.Body,
		preview:     txt.Preview,
		from:        addrMailbox(env.From),
		to:          addrMailbox(env.To),
		cc:          addrMailbox(env.Cc),
		displayFrom: displayAddr(env.From),
		displayTo:   displayAddr(env.To),
		messageID:   txt.MessageID,
		refs:        strings.Join(txt.References, " "),
	}
	base, reply := message.BaseSubject(message.DecodeWords(env.Subject))
	b.subject, b.reply = message.CollationKey(base), reply
	if t, err := mail.ParseDate(env.Date); err == nil {
		b.sent = sql.NullInt64{Int64: t.Unix(), Valid: true}
	}
	return b, nil
}

// addrMailbox is the SORT FROM/TO/CC value: the addr-mailbox of the first
// address (RFC 5256), "" for none.
func addrMailbox(list []message.Address) string {
	if len(list) == 0 {
		return ""
	}
	return message.CollationKey(list[0].Mailbox)
}

// displayAddr is the SORT DISPLAYFROM/DISPLAYTO value of RFC 5957 §3: the
// decoded display name of the first address, else its address.
func displayAddr(list []message.Address) string {
	if len(list) == 0 {
		return ""
	}
	a := list[0]
	switch {
	case a.Name != "":
		return message.CollationKey(a.Name)
	case a.Mailbox != "" && a.Host != "":
		return message.CollationKey(a.Mailbox + "@" + a.Host)
	}
	return message.CollationKey(a.Mailbox)
}

// maxIndexedText bounds the decoded text of one body that goes into
// body_fts: indexing costs about 2 ms per 10 KB on the writer, so a body
// with megabytes of text would hold every delivery back for seconds. Such
// bodies are marked indexed = 2 and searched by reading their files, as
// rare as they are.
const maxIndexedText = 1 << 20

// textState is the body_index.indexed value for a body's text.
func textState(b *bodyIndex) int {
	if len(b.header)+len(b.text) > maxIndexedText {
		return 2
	}
	return 1
}

// insertBodyIndex stores a body's index rows, unless it has them or its
// body row is gone (a reindex racing an expunge). Without withText the
// body_fts row is left to the indexer (indexPending).
func insertBodyIndex(t *txn, blob string, b *bodyIndex, withText bool) error {
	indexed := 0
	if withText {
		indexed = textState(b)
	}
	res, err := t.exec(`INSERT INTO body_index(blob, indexed, preview, sent, subject, reply, from_addr, to_addr, cc_addr,
			display_from, display_to, message_id, refs)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
		WHERE EXISTS (SELECT 1 FROM bodies WHERE blob = ?) AND NOT EXISTS (SELECT 1 FROM body_index WHERE blob = ?)`,
		blob, indexed, b.preview, b.sent, b.subject, b.reply, b.from, b.to, b.cc, b.displayFrom, b.displayTo, b.messageID, b.refs,
		blob, blob)
	if err != nil {
		return fmt.Errorf("index body %s: %w", blob, err)
	}
	if n, _ := res.RowsAffected(); n == 0 || indexed != 1 {
		return nil
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if _, err := t.exec(`INSERT INTO body_fts(rowid, header, body) VALUES (?, ?, ?)`, id, b.header, b.text); err != nil {
		return fmt.Errorf("index body %s: %w", blob, err)
	}
	return nil
}

// textIndexer fills body_fts for bodies delivered without it. Trigram
// indexing costs milliseconds per message (much more for a large text), on
// the one writer connection; done inside each delivery's commit, it held
// every delivery of the group commit back (LMTP throughput fell sevenfold
// on the standard set). The indexer does it just after, in commits of
// bounded size (indexBatchText), so a delivery waits for at most one such
// batch; SEARCH reads the few bodies not indexed yet from their files.
type textIndexer struct {
	mu      sync.Mutex
	running bool
	closed  bool
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

// kickIndexer starts the indexer if needed and tells it there is work.
func (s *Store) kickIndexer() {
	x := &s.text
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	if !x.running {
		x.running = true
		x.kick, x.quit, x.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go s.indexLoop(x.kick, x.quit, x.done)
	}
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// stop ends the indexer, after the body it is indexing. Bodies left
// pending are indexed after the next delivery or by `loft reindex`.
func (x *textIndexer) stop() {
	x.mu.Lock()
	running := x.running && !x.closed // Close may be called twice
	x.closed = true
	x.mu.Unlock()
	if running {
		close(x.quit)
		<-x.done
	}
}

func (s *Store) indexLoop(kick, quit, done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-quit
		cancel()
	}()
	for {
		select {
		case <-quit:
			return
		case <-kick:
		}
		if _, err := s.IndexPending(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("full-text indexing", "err", err)
		}
	}
}

// indexBatchText bounds the text one indexer commit adds: FTS5 writes a
// segment per commit, so one body per commit costs ten times more in
// merges, while a delivery queued behind a large batch waits for all of it.
const indexBatchText = 512 << 10

// IndexPending adds the full text of every body delivered without it to
// the index now, and returns how many it indexed.
func (s *Store) IndexPending(ctx context.Context) (int, error) {
	n := 0
	for {
		rows, err := s.db.QueryContext(ctx, `SELECT id, blob FROM body_index WHERE indexed = 0 ORDER BY id LIMIT 64`)
		if err != nil {
			return n, err
		}
		type pending struct {
			id   int64
			blob string
			b    *bodyIndex
		}
		var batch []pending
		for rows.Next() {
			var p pending
			if err := rows.Scan(&p.id, &p.blob); err != nil {
				rows.Close()
				return n, err
			}
			batch = append(batch, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return n, err
		}
		if len(batch) == 0 {
			return n, nil
		}
		size := 0
		for i := range batch {
			if size >= indexBatchText {
				batch = batch[:i]
				break
			}
			b, err := s.analyzeBlob(ctx, batch[i].blob)
			if errors.Is(err, ErrNoMessage) {
				b = nil // expunged meanwhile: its rows go below
			} else if err != nil {
				return n, fmt.Errorf("index body %s: %w", batch[i].blob, err)
			} else if textState(b) == 1 {
				size += len(b.header) + len(b.text)
			}
			batch[i].b = b
		}
		done := 0
		err = s.write(ctx, func(t *txn) error {
			done = 0
			for _, p := range batch {
				if p.b == nil {
					if err := deleteBodyIndex(t, p.blob); err != nil {
						return err
					}
					continue
				}
				state := textState(p.b)
				res, err := t.exec(`UPDATE body_index SET indexed = ? WHERE id = ? AND indexed = 0`, state, p.id)
				if err != nil {
					return err
				}
				if k, _ := res.RowsAffected(); k == 0 || state != 1 {
					continue // expunged, indexed by someone else, or too large
				}
				if _, err := t.exec(`INSERT INTO body_fts(rowid, header, body) VALUES (?, ?, ?)`, p.id, p.b.header, p.b.text); err != nil {
					return err
				}
				done++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("index bodies: %w", err)
		}
		n += done
	}
}

// analyzeBlob computes the index rows of a stored body from its file.
func (s *Store) analyzeBlob(ctx context.Context, blob string) (*bodyIndex, error) {
	msg, err := s.Structure(ctx, blob)
	if err != nil {
		return nil, err
	}
	f, err := s.OpenBody(blob)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return analyzeBody(f, msg, true)
}

// TextField says which decoded text SearchText looks in.
type TextField int

// Text fields (IMAP SEARCH HEADER and its shorthands, BODY, TEXT).
const (
	TextHeader TextField = iota // the top-level header, one "name:value" line per field
	TextBody                    // the text parts and attachment names
	TextAll                     // both
)

// SearchTextResult answers SearchText.
type SearchTextResult struct {
	// Matches are the UIDs of indexed messages whose text contains the
	// string, ascending.
	Matches []uint32
	// Headers holds, for TextHeader, the decoded header of each match,
	// for the caller to look at the field it wants.
	Headers map[uint32]string
	// Unindexed are the UIDs of messages whose text the index does not
	// hold yet; the caller checks those itself (see message.ExtractText).
	Unindexed []uint32
}

// SearchText finds the messages of a mailbox whose decoded text (see
// message.Text) contains text, which must be lower-case, as the index
// is. The index narrows (FTS5 trigrams, for three characters or more) and
// instr() on the stored text confirms where the narrowing is not already
// exact (trigramExact), so the result is exactly that of
// strings.Contains on each message's text. The steps are separate queries
// on purpose: SQLite plans the joins of an FTS5 table with the mailbox's
// messages badly (seconds instead of milliseconds on 2,000 messages).
func (s *Store) SearchText(ctx context.Context, accountID, mailboxID int64, field TextField, text string) (*SearchTextResult, error) {
	// Text is indexed when searches need it, not at delivery: the indexer
	// shares the one writer with deliveries, and run after each of them it
	// cut LMTP throughput in half or more. Until it catches up, bodies not
	// indexed yet are answered from their files (Unindexed), so results are
	// exact either way.
	s.kickIndexer()
	// One snapshot for the coverage, the candidates and the confirming, so
	// that a reindex committed meanwhile cannot mix body row ids.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("store: search text: %w", err)
	}
	defer tx.Rollback()
	gen, err := textGeneration(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("store: search text: %w", err)
	}
	cov, err := s.coverageOf(ctx, tx, accountID, mailboxID, gen) // textcache.go
	if err != nil {
		return nil, err
	}
	res := &SearchTextResult{Unindexed: cov.uncovered}
	var cond, col string
	switch field {
	case TextHeader:
		cond, col = `instr(header, ?1) > 0`, `header`
		res.Headers = map[uint32]string{}
	case TextBody:
		cond, col = `instr(body, ?1) > 0`, `body`
	default:
		// Both of body_fts's columns: no column filter, which FTS5 would
		// apply to every position of a common string's trigrams.
		cond, col = `(instr(header, ?1) > 0 OR instr(body, ?1) > 0)`, ``
	}
	// Narrow with the trigram index. Trigrams need three characters, and
	// a string that is not UTF-8 could tokenize differently from the
	// stored text: then every indexed message is a candidate.
	narrow := utf8.RuneCountInString(text) >= 3 && utf8.ValidString(text)
	var found []int64
	if narrow {
		found, err = int64List(ctx, tx, `SELECT group_concat(rowid) FROM body_fts WHERE body_fts MATCH ?`,
			ftsPhrase(col, text))
		if err != nil {
			return nil, fmt.Errorf("store: search text: %w", err)
		}
		if len(found) == 0 {
			return res, nil
		}
	}
	if cov.pairs == nil {
		return s.searchTextJoined(ctx, tx, res, accountID, mailboxID, cov.size, narrow, found, field, text, cond)
	}
	// The candidates among the mailbox's messages, by the cached pairs.
	var cands []bodyUID // pairs, by body row then UID
	if narrow {
		slices.Sort(found) // FTS5 gives rowids ascending: no work
		p := cov.pairs
		for _, id := range found {
			i, _ := slices.BinarySearchFunc(p, id, func(b bodyUID, id int64) int { return cmp.Compare(b.id, id) })
			for ; i < len(p) && p[i].id == id; i++ {
				cands = append(cands, p[i])
			}
			p = p[i:]
		}
	} else {
		cands = cov.pairs
	}
	if len(cands) == 0 {
		return res, nil
	}
	if err := s.matchCandidates(ctx, tx, res, cands, narrow && field != TextHeader && trigramExact(text), text, cond); err != nil {
		return nil, err
	}
	// Pairs outlive their messages: keep those still in the mailbox.
	slices.Sort(res.Matches)
	e, err := s.accountEntry(ctx, accountID, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("store: search text: %w", err)
	}
	e.mu.RLock()
	res.Matches = intersectSorted(res.Matches, e.uids)
	size := len(e.uids)
	e.mu.RUnlock()
	if len(cov.pairs) > 2*size+1024 {
		s.texts.forgetStale(coverageKey{accountID, mailboxID})
	}
	if res.Headers != nil {
		for uid := range res.Headers {
			if _, ok := slices.BinarySearch(res.Matches, uid); !ok {
				delete(res.Headers, uid)
			}
		}
	}
	return res, nil
}

// ftsPhrase is the MATCH expression of text as one phrase, in column col
// ("" for all of them).
func ftsPhrase(col, text string) string {
	phrase := `"` + strings.ReplaceAll(text, `"`, `""`) + `"`
	if col == "" {
		return phrase
	}
	return col + ` : ` + phrase
}

// matchCandidates appends to res the UIDs of the candidates that match:
// all of them when the trigram MATCH was exact, else those confirmText
// keeps.
func (s *Store) matchCandidates(ctx context.Context, q queryer, res *SearchTextResult, cands []bodyUID, exact bool, text, cond string) error {
	if !exact {
		return s.confirmText(ctx, q, res, cands, text, cond)
	}
	for _, c := range cands {
		res.Matches = append(res.Matches, c.uid)
	}
	return nil
}

// confirmText keeps the candidates whose stored text satisfies cond (for
// text), appending their UIDs (and, for a header search, headers) to res.
func (s *Store) confirmText(ctx context.Context, q queryer, res *SearchTextResult, cands []bodyUID, text, cond string) error {
	ids := make([]int64, 0, len(cands))
	for i, c := range cands {
		if i == 0 || cands[i-1].id != c.id {
			ids = append(ids, c.id)
		}
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	rows, err := q.QueryContext(ctx, `SELECT rowid, header FROM body_fts
		WHERE rowid IN (SELECT value FROM json_each(?2)) AND `+cond, text, string(list))
	if err != nil {
		return fmt.Errorf("store: search text: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var header string
		if err := rows.Scan(&id, &header); err != nil {
			return fmt.Errorf("store: search text: %w", err)
		}
		i, _ := slices.BinarySearchFunc(cands, id, func(b bodyUID, id int64) int { return cmp.Compare(b.id, id) })
		for ; i < len(cands) && cands[i].id == id; i++ {
			res.Matches = append(res.Matches, cands[i].uid)
			if res.Headers != nil {
				res.Headers[cands[i].uid] = header
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: search text: %w", err)
	}
	return nil
}

// intersectSorted returns the elements of a (ascending) also in b
// (ascending), in a's array.
func intersectSorted(a, b []uint32) []uint32 {
	out := a[:0]
	j := 0
	for _, v := range a {
		for j < len(b) && b[j] < v {
			j++
		}
		if j < len(b) && b[j] == v {
			out = append(out, v)
		}
	}
	return out
}

// int64List runs a query of one group_concat of integers: for a long
// list, one row parsed in Go costs a third of the rows one at a time.
func int64List(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, query string, args ...any) ([]int64, error) {
	var list sql.NullString
	if err := q.QueryRowContext(ctx, query, args...).Scan(&list); err != nil {
		return nil, err
	}
	var out []int64
	for f := range strings.SplitSeq(list.String, ",") {
		if f == "" {
			continue
		}
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("integer list: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// searchTextJoined is SearchText for a mailbox whose pairs the coverage
// cache does not keep (above its bound): the mailbox's messages are
// joined with body_index for each search.
func (s *Store) searchTextJoined(ctx context.Context, q queryer, res *SearchTextResult, accountID, mailboxID int64, size int,
	narrow bool, found []int64, field TextField, text, cond string) (*SearchTextResult, error) {
	// Which index rows are this mailbox's messages (copies share one):
	// for a few candidates (of every mailbox: FTS5 knows no mailboxes),
	// theirs; else the mailbox's, all of them, filtered.
	uidOf := uidsByID{first: map[int64]uint32{}}
	var ids []int64
	var rows *sql.Rows
	var err error
	if narrow && len(found) <= size/2 {
		var list []byte
		if list, err = json.Marshal(found); err != nil {
			return nil, err
		}
		// CROSS JOIN fixes the order and "+" keeps SQLite from scanning
		// the mailbox by (mailbox_id, uid): from each candidate to its
		// messages by blob.
		rows, err = q.QueryContext(ctx, `SELECT m.uid, i.id FROM json_each(?) j CROSS JOIN body_index i CROSS JOIN messages m
			WHERE i.id = j.value AND i.indexed = 1 AND m.blob = i.blob AND +m.mailbox_id = ?
			AND EXISTS (SELECT 1 FROM mailboxes b WHERE b.id = m.mailbox_id AND b.account_id = ?)`,
			string(list), mailboxID, accountID)
	} else {
		// The message rows' body_id (migration 8), not body_index: a
		// body's index id without text rows (indexed != 1) is no
		// candidate, nor found in body_fts when confirming. The account
		// is checked once.
		rows, err = q.QueryContext(ctx, `SELECT m.uid, m.body_id FROM messages m
			WHERE m.mailbox_id = ?1 AND m.body_id IS NOT NULL
			AND EXISTS (SELECT 1 FROM mailboxes b WHERE b.id = ?1 AND b.account_id = ?2)
			ORDER BY m.uid`, mailboxID, accountID)
	}
	if err != nil {
		return nil, fmt.Errorf("store: search text: %w", err)
	}
	for rows.Next() {
		var uid uint32
		var id int64
		if err := rows.Scan(&uid, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: search text: %w", err)
		}
		if uidOf.add(id, uid) {
			ids = append(ids, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: search text: %w", err)
	}
	if narrow && len(found) > size/2 {
		ids = ids[:0] // the candidates among the mailbox's
		for _, id := range found {
			if _, ok := uidOf.first[id]; ok {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return res, nil
	}
	var cands []bodyUID
	for _, id := range ids {
		for _, uid := range uidOf.appendTo(nil, id) {
			cands = append(cands, bodyUID{id, uid})
		}
	}
	slices.SortFunc(cands, compareBodyUID)
	if err := s.matchCandidates(ctx, q, res, cands, narrow && field != TextHeader && trigramExact(text), text, cond); err != nil {
		return nil, err
	}
	slices.Sort(res.Matches)
	return res, nil
}

// uidsByID maps body_index ids to the UIDs of a mailbox's messages with
// that body: one, but for copies in the same mailbox, so without a slice
// for each of 100,000 messages.
type uidsByID struct {
	first map[int64]uint32
	more  map[int64][]uint32 // the copies' UIDs after the first
}

// add notes that the message uid has the body id, and reports whether
// the id is new.
func (m *uidsByID) add(id int64, uid uint32) bool {
	if _, ok := m.first[id]; !ok {
		m.first[id] = uid
		return true
	}
	if m.more == nil {
		m.more = map[int64][]uint32{}
	}
	m.more[id] = append(m.more[id], uid)
	return false
}

// appendTo appends the UIDs of the messages with the body id to dst.
func (m *uidsByID) appendTo(dst []uint32, id int64) []uint32 {
	uid, ok := m.first[id]
	if !ok {
		return dst
	}
	return append(append(dst, uid), m.more[id]...)
}

// trigramExact reports whether the trigram MATCH of text as one phrase
// already is exactly instr() on the stored text, so that its candidates
// need no confirming. It is for plain ASCII: the phrase's trigrams sit at
// consecutive characters of one column, which is a substring of that
// column; FTS5 folds the case of both sides, which for an ASCII string
// against text Go has lower-cased changes nothing, except at the ASCII
// characters of foldedIntoASCII; and body_fts's columns are the very text
// instr() reads. A non-ASCII string is confirmed: FTS5 folds Unicode case
// by its own tables, not Go's.
func trigramExact(text string) bool {
	if len(text) < 3 {
		return false
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; c >= utf8.RuneSelf || c == 0 || strings.IndexByte(foldedIntoASCII, c) >= 0 {
			return false
		}
	}
	return true
}

// foldedIntoASCII are the ASCII characters into which FTS5's trigram
// tokenizer folds a character that strings.ToLower leaves outside ASCII:
// "ſ" (U+017F, long s) is indexed as "s", so "stop" finds "ſtop"
// (TestTrigramFoldIntoASCII checks every character).
const foldedIntoASCII = "s"

// int64s runs a query of one integer column.
func (s *Store) int64s(ctx context.Context, q string, args ...any) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// SortInfo is what SORT and THREAD (RFC 5256, RFC 5957) order and group a
// message by. Strings are i;unicode-casemap collation keys (RFC 5051):
// compare them octet by octet.
type SortInfo struct {
	UID          uint32
	InternalDate int64 // unix seconds
	Size         int64
	// Sent is the Date: field in unix seconds, or the internal date if it
	// has none that parses (RFC 5256 §2.2).
	Sent        int64
	Subject     string // base subject (RFC 5256 §2.1)
	Reply       bool   // the subject marks a reply or forward
	From, To    string // addr-mailbox of the first address
	Cc          string
	DisplayFrom string // RFC 5957
	DisplayTo   string
	MessageID   string   // normalized; "" if none is valid
	References  []string // normalized: References, else In-Reply-To's first

	bodyID int64 // body_index.id; 0 for a body without index rows
}

// SortKeys says which of a SortInfo's fields a caller needs.
type SortKeys int

const (
	// SortDates are UID, InternalDate, Size and Sent: what SORT by
	// ARRIVAL, DATE and SIZE needs. Loading only these is a fraction of
	// the cost of the strings, for the first SORT of a large mailbox.
	SortDates SortKeys = iota + 1
	// SortAll are all the fields, for the other sort keys and THREAD.
	SortAll
)

// loadSortInfo reads the sort and thread data (keys says which) of a
// mailbox's messages with UIDs above after, in UID order; SortInfo
// (sortcache.go) keeps them. Bodies not indexed yet are read from their
// files.
func (s *Store) loadSortInfo(ctx context.Context, accountID, mailboxID int64, after uint32, keys SortKeys) ([]SortInfo, error) {
	// The blob only for a body without index rows: the others do not
	// need the 64 characters of its name.
	// The dates are the message row's own (migration 8); the strings are
	// body_index's, reached by its integer key.
	cols := `m.uid, m.internal_date, m.size, CASE WHEN m.body_id IS NULL THEN m.blob END, m.body_id, m.sent`
	tables := `messages m`
	if keys == SortAll {
		cols += `, i.subject, i.reply, i.from_addr, i.to_addr, i.cc_addr, i.display_from, i.display_to, i.message_id, i.refs`
		tables += ` LEFT JOIN body_index i ON i.id = m.body_id`
	}
	// Sized once: a SortInfo is some 200 bytes, and growing a slice of
	// 100,000 by doubling copied and allocated 100 MB more.
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE mailbox_id = ? AND uid > ?`, mailboxID, after).Scan(&n); err != nil {
		return nil, fmt.Errorf("store: sort info: %w", err)
	}
	// The account is checked once, not joined with each message.
	rows, err := s.db.QueryContext(ctx, `SELECT `+cols+`
		FROM `+tables+`
		WHERE m.mailbox_id = ?1 AND m.uid > ?3 AND EXISTS (SELECT 1 FROM mailboxes b WHERE b.id = ?1 AND b.account_id = ?2)
		ORDER BY m.uid`, mailboxID, accountID, after)
	if err != nil {
		return nil, fmt.Errorf("store: sort info: %w", err)
	}
	defer rows.Close()
	out := make([]SortInfo, 0, n)
	var missing []int // indexes into out of unindexed bodies
	var blobs []string
	var si SortInfo
	var blob sql.NullString
	var id, sent sql.NullInt64
	var subject, from, to, cc, dfrom, dto, mid, refs sql.NullString
	var reply sql.NullBool
	dest := []any{&si.UID, &si.InternalDate, &si.Size, &blob, &id, &sent}
	if keys == SortAll {
		dest = append(dest, &subject, &reply, &from, &to, &cc, &dfrom, &dto, &mid, &refs)
	}
	for rows.Next() {
		si = SortInfo{}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("store: sort info: %w", err)
		}
		if !id.Valid {
			missing = append(missing, len(out))
			blobs = append(blobs, blob.String)
			out = append(out, si)
			continue
		}
		si.bodyID = id.Int64
		si.fill(sent, subject.String, reply.Bool, from.String, to.String, cc.String, dfrom.String, dto.String, mid.String, refs.String)
		out = append(out, si)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: sort info: %w", err)
	}
	rows.Close()
	for k, i := range missing {
		b, err := s.analyzeBlob(ctx, blobs[k])
		if errors.Is(err, ErrNoMessage) {
			b = &bodyIndex{} // expunged meanwhile: sorts as empty
		} else if err != nil {
			return nil, fmt.Errorf("store: sort info: %w", err)
		}
		out[i].fill(b.sent, b.subject, b.reply, b.from, b.to, b.cc, b.displayFrom, b.displayTo, b.messageID, b.refs)
	}
	return out, nil
}

// addSortStrings returns a copy of keys, loaded with SortDates, with
// the other keys added from body_index by id: cheaper than loading them
// all again with the messages. ok is false if a body's
// rows changed meanwhile (a reindex gives them a new id); then the caller
// loads them all.
func (s *Store) addSortStrings(ctx context.Context, keys []SortInfo) (out []SortInfo, ok bool, err error) {
	ids := make([]int64, 0, len(keys))
	for _, si := range keys {
		if si.bodyID != 0 { // else read from its file: it has every key
			ids = append(ids, si.bodyID)
		}
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, false, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT i.id, i.subject, i.reply, i.from_addr, i.to_addr, i.cc_addr,
			i.display_from, i.display_to, i.message_id, i.refs
		FROM json_each(?) j CROSS JOIN body_index i WHERE i.id = j.value`, string(list))
	if err != nil {
		return nil, false, fmt.Errorf("store: sort info: %w", err)
	}
	defer rows.Close()
	type strs struct {
		subject, from, to, cc, dfrom, dto, mid, refs string
		reply                                        bool
	}
	byID := make(map[int64]*strs, len(ids))
	for rows.Next() {
		var id int64
		v := &strs{}
		if err := rows.Scan(&id, &v.subject, &v.reply, &v.from, &v.to, &v.cc, &v.dfrom, &v.dto, &v.mid, &v.refs); err != nil {
			return nil, false, fmt.Errorf("store: sort info: %w", err)
		}
		byID[id] = v
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("store: sort info: %w", err)
	}
	out = slices.Clone(keys)
	for i := range out {
		si := &out[i]
		if si.bodyID == 0 {
			continue
		}
		v := byID[si.bodyID]
		if v == nil {
			return nil, false, nil
		}
		si.Subject, si.Reply = v.subject, v.reply
		si.From, si.To, si.Cc, si.DisplayFrom, si.DisplayTo = v.from, v.to, v.cc, v.dfrom, v.dto
		si.MessageID = v.mid
		si.References = strings.Fields(v.refs)
	}
	return out, true, nil
}

func (si *SortInfo) fill(sent sql.NullInt64, subject string, reply bool, from, to, cc, dfrom, dto, mid, refs string) {
	si.Sent = si.InternalDate
	if sent.Valid {
		si.Sent = sent.Int64
	}
	si.Subject, si.Reply = subject, reply
	si.From, si.To, si.Cc, si.DisplayFrom, si.DisplayTo = from, to, cc, dfrom, dto
	si.MessageID = mid
	si.References = strings.Fields(refs)
}

// Preview returns a body's preview (RFC 8970), computed at delivery; for a
// body not indexed yet, from its file.
func (s *Store) Preview(ctx context.Context, blob string) (string, error) {
	var p string
	err := s.db.QueryRowContext(ctx, `SELECT preview FROM body_index WHERE blob = ?`, blob).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		b, err := s.analyzeBlob(ctx, blob)
		if err != nil {
			return "", fmt.Errorf("store: preview of %s: %w", blob, err)
		}
		return b.preview, nil
	}
	if err != nil {
		return "", fmt.Errorf("store: preview of %s: %w", blob, err)
	}
	return p, nil
}

// reindexBatch is how many bodies one reindex commit rebuilds: small
// enough that deliveries sharing the writer wait little.
const reindexBatch = 64

// ReindexResult reports a Reindex.
type ReindexResult struct {
	Bodies  int // bodies whose rows were rebuilt
	Dropped int // rows of bodies that no longer exist, removed
}

// Reindex rebuilds the index rows of every body of the account with the
// given address, or of all bodies when address is "". It reads each body
// from its file and replaces its rows, a batch per commit, so it can run
// beside a live server; SEARCH stays exact meanwhile (see SearchText).
func (s *Store) Reindex(ctx context.Context, address string) (*ReindexResult, error) {
	var q string
	var args []any
	if address == "" {
		q = `SELECT blob FROM bodies ORDER BY blob`
	} else {
		acct, err := s.Account(ctx, address)
		if err != nil {
			return nil, fmt.Errorf("store: reindex: %w", err)
		}
		q = `SELECT DISTINCT m.blob FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
			WHERE b.account_id = ? ORDER BY m.blob`
		args = append(args, acct.ID)
	}
	blobs, err := s.column(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: reindex: %w", err)
	}
	res := &ReindexResult{}
	for len(blobs) > 0 {
		batch := blobs[:min(reindexBatch, len(blobs))]
		blobs = blobs[len(batch):]
		idx := make([]*bodyIndex, len(batch))
		for i, blob := range batch {
			idx[i], err = s.analyzeBlob(ctx, blob)
			if errors.Is(err, ErrNoMessage) {
				continue // expunged meanwhile
			}
			if err != nil {
				return res, fmt.Errorf("store: reindex: %w", err)
			}
		}
		err := s.write(ctx, func(t *txn) error {
			// The replaced rows get new ids: cached ones are stale
			// (textcache.go).
			if err := bumpTextGeneration(t); err != nil {
				return err
			}
			for i, blob := range batch {
				if idx[i] == nil {
					continue
				}
				if err := deleteBodyIndex(t, blob); err != nil {
					return err
				}
				if err := insertBodyIndex(t, blob, idx[i], true); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("store: reindex: %w", err)
		}
		for _, b := range idx {
			if b != nil {
				res.Bodies++
			}
		}
	}
	if address == "" {
		err = s.write(ctx, func(t *txn) error {
			r, err := t.exec(`DELETE FROM body_fts WHERE rowid IN
				(SELECT id FROM body_index i WHERE NOT EXISTS (SELECT 1 FROM bodies b WHERE b.blob = i.blob))`)
			if err != nil {
				return err
			}
			n, _ := r.RowsAffected()
			res.Dropped = int(n)
			if _, err := t.exec(`DELETE FROM body_index WHERE NOT EXISTS (SELECT 1 FROM bodies b WHERE b.blob = body_index.blob)`); err != nil {
				return err
			}
			// Merge the index's segments after a rebuild of everything.
			_, err = t.exec(`INSERT INTO body_fts(body_fts) VALUES ('optimize')`)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("store: reindex: %w", err)
		}
	}
	return res, nil
}

func deleteBodyIndex(t *txn, blob string) error {
	if _, err := t.exec(`DELETE FROM body_fts WHERE rowid IN (SELECT id FROM body_index WHERE blob = ?)`, blob); err != nil {
		return err
	}
	_, err := t.exec(`DELETE FROM body_index WHERE blob = ?`, blob)
	return err
}

// column runs a query of one text column.
func (s *Store) column(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// analyzeNew computes the index rows of a new body but its text (the
// indexer adds it later), from memory when it was small enough to keep
// there, else from its file.
func (s *Store) analyzeNew(id string, mem *capped, msg *message.Message) (*bodyIndex, error) {
	if !mem.over {
		return analyzeBody(bytes.NewReader(mem.buf.Bytes()), msg, false)
	}
	f, err := s.blobs.Open(id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return analyzeBody(f, msg, false)
}
