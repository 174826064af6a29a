// Consistency check: recomputes what the store keeps incrementally (usage,
// message counts) and compares the database with the blob files. `loft
// check` and the crash tests use it.
package store

import (
	"context"
	"fmt"
	"os"
)

// Report is what Check found.
type Report struct {
	// Problems are inconsistencies: each one a bug or damage.
	Problems []string
	// Unreferenced counts body files that no message refers to: writes
	// that never committed (or are committing right now). Not lost mail;
	// Recover frees them at the next start.
	Unreferenced int
}

// Check compares the stored usage and message count of every account with
// the sum over its messages, and the bodies table with the blob files. It
// reads a consistent snapshot and changes nothing.
func (s *Store) Check(ctx context.Context) (*Report, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: check: %w", err)
	}
	defer tx.Rollback()
	var problems []string
	rows, err := tx.QueryContext(ctx, `SELECT a.address, a.usage, a.messages,
		(SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = a.id),
		(SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = a.id)
		FROM accounts a ORDER BY a.address`)
	if err != nil {
		return nil, fmt.Errorf("store: check: %w", err)
	}
	for rows.Next() {
		var addr string
		var usage, count, sum, n int64
		if err := rows.Scan(&addr, &usage, &count, &sum, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: check: %w", err)
		}
		if usage != sum {
			problems = append(problems, fmt.Sprintf("account %s: usage %d, but its messages add up to %d", addr, usage, sum))
		}
		if count != n {
			problems = append(problems, fmt.Sprintf("account %s: message count %d, but it has %d", addr, count, n))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: check: %w", err)
	}

	var missingBody int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages m WHERE NOT EXISTS
		(SELECT 1 FROM bodies b WHERE b.blob = m.blob)`).Scan(&missingBody); err != nil {
		return nil, fmt.Errorf("store: check: %w", err)
	}
	if missingBody > 0 {
		problems = append(problems, fmt.Sprintf("%d messages refer to a body that is not recorded", missingBody))
	}

	known := make(map[string]int64)
	rows, err = tx.QueryContext(ctx, `SELECT blob, size FROM bodies`)
	if err != nil {
		return nil, fmt.Errorf("store: check: %w", err)
	}
	for rows.Next() {
		var id string
		var size int64
		if err := rows.Scan(&id, &size); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: check: %w", err)
		}
		known[id] = size
	}
	rows.Close()
	onDisk := make(map[string]bool, len(known))
	err = s.blobs.IDs(func(id string) error {
		onDisk[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: check: %w", err)
	}
	for id, size := range known {
		if !onDisk[id] {
			problems = append(problems, fmt.Sprintf("body %s is recorded but its file is missing", id))
			continue
		}
		fi, err := statBlob(s, id)
		if err != nil {
			return nil, fmt.Errorf("store: check: %w", err)
		}
		if fi != size {
			problems = append(problems, fmt.Sprintf("body %s: recorded size %d, file has %d bytes", id, size, fi))
		}
	}
	rep := &Report{Problems: problems}
	for id := range onDisk {
		if _, ok := known[id]; !ok {
			rep.Unreferenced++
		}
	}
	return rep, nil
}

func statBlob(s *Store, id string) (int64, error) {
	fi, err := os.Stat(s.blobs.Path(id))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
