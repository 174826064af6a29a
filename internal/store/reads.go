// Prepared reads: the queries sessions run for nearly every command
// (looking a mailbox up, its modseq for the index, a body's structure, the
// account for a quota check) are prepared once rather than parsed and
// planned each time, which in SQLite costs more than running them.
// database/sql prepares a statement again on each reader connection that
// runs it, at most once per connection.
package store

import (
	"context"
	"database/sql"
	"sync"
)

// readStmts caches the prepared statements of the read connections.
type readStmts struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// queryRow runs a one-row read through a prepared statement.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) row {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(ctx, args...)}
}

func (s *Store) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c := &s.reads
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = make(map[string]*sql.Stmt)
	}
	c.stmts[query] = st
	return st, nil
}

// close closes the prepared statements.
func (c *readStmts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts = nil
}
