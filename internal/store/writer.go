// The writer: every change to the database goes through one goroutine that
// takes all requests queued at that moment and runs them in a single
// transaction, each inside its own savepoint, then commits once. That is
// group commit: N concurrent deliveries cost one WAL fsync, not N. One
// request failing rolls back only its savepoint. After the commit, the
// changes are published to the feed in commit order, then each caller is
// answered, so a reply (250, OK) always follows durability.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// maxBatch bounds how many requests share a commit, so that one commit's
// latency stays small even under a burst.
const maxBatch = 256

// txn is what a write request sees: the transaction's connection and what
// the request wants done after the commit.
type txn struct {
	ctx     context.Context
	w       *writer
	changes []Change // published to the feed after commit
	removes []string // blob ids whose files are removed after commit
	bodies  []string // new blob ids whose directories are synced before commit
}

// stmt returns the writer connection's prepared statement for query.
// Preparing is a large part of a small write's cost in SQLite, and the
// writer runs the same few statements all day, so each is prepared once.
func (t *txn) stmt(query string) (*sql.Stmt, error) {
	if st, ok := t.w.stmts[query]; ok {
		return st, nil
	}
	st, err := t.w.conn.PrepareContext(t.ctx, query)
	if err != nil {
		return nil, err
	}
	t.w.stmts[query] = st
	return st, nil
}

func (t *txn) exec(query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(t.ctx, args...)
}

// row is a *sql.Row or the error of preparing it.
type row struct {
	r   *sql.Row
	err error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}

func (t *txn) queryRow(query string, args ...any) row {
	st, err := t.stmt(query)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(t.ctx, args...)}
}

func (t *txn) query(query string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(t.ctx, args...)
}

type writeReq struct {
	fn   func(t *txn) error
	done chan error
}

type writer struct {
	s     *Store
	conn  *sql.Conn
	stmts map[string]*sql.Stmt // prepared on conn, used by the loop alone
	reqs  chan writeReq
	quit  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex // guards closed
	close bool
}

func startWriter(s *Store) (*writer, error) {
	conn, err := s.wdb.Conn(context.Background())
	if err != nil {
		return nil, fmt.Errorf("writer connection: %w", err)
	}
	w := &writer{s: s, conn: conn, stmts: make(map[string]*sql.Stmt), reqs: make(chan writeReq, maxBatch), quit: make(chan struct{})}
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

// write runs fn in the next group commit and returns fn's error, or the
// commit's. The changes fn recorded are published before write returns.
func (s *Store) write(ctx context.Context, fn func(t *txn) error) error {
	w := s.writer
	w.mu.Lock()
	if w.close {
		w.mu.Unlock()
		return ErrClosed
	}
	req := writeReq{fn: fn, done: make(chan error, 1)}
	// Sending under the lock keeps stop from closing the channel under us;
	// the loop drains continuously, so this blocks only under a burst.
	w.reqs <- req
	w.mu.Unlock()
	// Once queued, the request runs even if ctx ends: a caller must not
	// be told "failed" for a write that then commits.
	return <-req.done
}

func (w *writer) stop() {
	w.mu.Lock()
	if !w.close {
		w.close = true
		close(w.reqs)
	}
	w.mu.Unlock()
	w.wg.Wait()
	for _, st := range w.stmts {
		st.Close()
	}
	w.conn.Close()
}

func (w *writer) loop() {
	defer w.wg.Done()
	batch := make([]writeReq, 0, maxBatch)
	for req := range w.reqs {
		batch = append(batch[:0], req)
	more:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		w.run(batch)
	}
}

// control runs a transaction-control statement (BEGIN, SAVEPOINT,
// RELEASE, COMMIT) prepared once, like the requests' statements: each
// commit runs 2 + 2 × requests of them.
func (w *writer) control(ctx context.Context, query string) error {
	t := txn{ctx: ctx, w: w}
	_, err := t.exec(query)
	return err
}

// run executes one batch in one transaction.
func (w *writer) run(batch []writeReq) {
	ctx := context.Background()
	errs := make([]error, len(batch))
	txns := make([]*txn, len(batch))
	fail := func(err error) {
		for _, r := range batch {
			r.done <- err
		}
	}
	begin := time.Now()
	if err := w.control(ctx, `BEGIN IMMEDIATE`); err != nil {
		fail(fmt.Errorf("store: begin: %w", err))
		return
	}
	for i, r := range batch {
		t := &txn{ctx: ctx, w: w}
		txns[i] = t
		if err := w.control(ctx, `SAVEPOINT req`); err != nil {
			errs[i] = fmt.Errorf("store: savepoint: %w", err)
			continue
		}
		errs[i] = r.fn(t)
		if errs[i] != nil {
			t.changes, t.removes, t.bodies = nil, nil, nil
			if _, err := w.conn.ExecContext(ctx, `ROLLBACK TO req`); err != nil {
				w.conn.ExecContext(ctx, `ROLLBACK`)
				fail(fmt.Errorf("store: rollback to savepoint: %w", err))
				return
			}
		}
		if err := w.control(ctx, `RELEASE req`); err != nil {
			w.conn.ExecContext(ctx, `ROLLBACK`)
			fail(fmt.Errorf("store: release savepoint: %w", err))
			return
		}
	}
	// The new bodies' contents are durable (each writer fsync'd its own);
	// their names become durable here, all in one directory fsync or a
	// few, before anything referring to them commits.
	var bodies []string
	for _, t := range txns {
		bodies = append(bodies, t.bodies...)
	}
	if err := w.s.blobs.SyncDirs(bodies); err != nil {
		w.conn.ExecContext(ctx, `ROLLBACK`)
		fail(fmt.Errorf("store: %w", err))
		return
	}
	if err := w.control(ctx, `COMMIT`); err != nil {
		w.conn.ExecContext(ctx, `ROLLBACK`)
		fail(fmt.Errorf("store: commit: %w", err))
		return
	}
	if w.s.observe != nil {
		w.s.observe(time.Since(begin))
	}
	for i, t := range txns {
		if errs[i] != nil {
			continue
		}
		w.s.index.applyChanges(t.changes)
		w.s.sorts.applyChanges(t.changes)
		w.s.feed.publish(t.changes)
		for _, id := range t.removes {
			if err := w.s.blobs.Remove(id); err != nil {
				// The body is unreferenced; Recover frees it at next start.
				w.s.log.Warn("remove expunged body", "blob", id, "err", err)
			}
		}
	}
	for i, r := range batch {
		r.done <- errs[i]
	}
}
