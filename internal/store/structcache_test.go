package store

import (
	"context"
	"fmt"
	"testing"

	"loft/internal/message"
)

// A second read of a body's structure comes from the cache: the same
// decoded value, without the database.
func TestStructureIsCached(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	addAccount(t, s, "a@example.org", nil)
	res := deliver(t, s, "Subject: hi\r\n\r\nbody\r\n", "a@example.org")
	msgs, err := s.Messages(ctx, res[0].AccountID, res[0].MailboxID)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("messages: %v %v", msgs, err)
	}
	first, err := s.Structure(ctx, msgs[0].Blob)
	if err != nil {
		t.Fatal(err)
	}
	if first.Envelope.Subject != "hi" {
		t.Fatalf("subject %q", first.Envelope.Subject)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE bodies SET structure = 'not json' WHERE blob = ?`, msgs[0].Blob); err != nil {
		t.Fatal(err)
	}
	second, err := s.Structure(ctx, msgs[0].Blob)
	if err != nil || second != first {
		t.Errorf("second read: %p %v, want the cached %p", second, err, first)
	}
}

// The cache stays within its bound, dropping the least recently used.
func TestStructCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newStructCache()
	jsonLen := 64 << 10
	n := int(maxStructCacheBytes/structCost(jsonLen)) + 10
	for i := range n {
		c.put(fmt.Sprint(i), &message.Message{}, jsonLen)
		c.get("0") // kept in use: never the least recently used
	}
	if c.size > maxStructCacheBytes {
		t.Errorf("size %d above the bound %d", c.size, maxStructCacheBytes)
	}
	if c.get("0") == nil {
		t.Error("the entry in use was dropped")
	}
	if c.get("1") != nil {
		t.Error("the least recently used entry was kept")
	}
	if c.get(fmt.Sprint(n-1)) == nil {
		t.Error("the newest entry was dropped")
	}
}
