// Save dates (RFC 8514): when each message was stored into its mailbox.
// They are kept in the database only (a trigger sets them on insert, see
// migration 4), not in the mailbox index, since only SAVEDATE fetches and
// searches read them.
package store

import (
	"context"
	"fmt"
	"time"
)

// SaveDates returns the save dates of the messages of a mailbox whose
// UIDs fall in ranges, by UID. A message stored before save dates were
// kept has none: it is absent from the map.
func (s *Store) SaveDates(ctx context.Context, accountID, mailboxID int64, ranges []UIDRange) (map[uint32]time.Time, error) {
	out := make(map[uint32]time.Time)
	for _, r := range ranges {
		rows, err := s.db.QueryContext(ctx, `SELECT m.uid, m.savedate FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
			WHERE m.mailbox_id = ? AND b.account_id = ? AND m.uid BETWEEN ? AND ? AND m.savedate IS NOT NULL`,
			mailboxID, accountID, r.First, r.Last)
		if err != nil {
			return nil, fmt.Errorf("store: save dates: %w", err)
		}
		for rows.Next() {
			var uid uint32
			var at int64
			if err := rows.Scan(&uid, &at); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: save dates: %w", err)
			}
			out[uid] = time.Unix(at, 0)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: save dates: %w", err)
		}
	}
	return out, nil
}
