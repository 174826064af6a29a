package main

import (
	"context"
	"strings"
	"testing"

	"loft/internal/store"
)

// TestReindexCommand runs `loft reindex` for one account and for all, with
// the flag before or after the address, and checks the index answers.
func TestReindexCommand(t *testing.T) {
	dir := t.TempDir()
	path, dataDir := writeConfig(t, dir, "")
	r := cli{dir: dir, stdin: "pw\n"}
	r.ok(t, "account", "add", "alice@example.test", "--config", path)
	st := openTestStore(t, dataDir)
	for _, m := range []string{"Subject: one\r\n\r\nGrüße aus Köln\r\n", "Subject: two\r\n\r\nnothing\r\n"} {
		if _, err := st.Deliver(context.Background(), strings.NewReader(m), store.DeliverOptions{Recipients: []string{"alice@example.test"}}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if out := r.ok(t, "reindex", "alice@example.test", "--config", path); !strings.HasPrefix(out, "reindexed 2 bodies of alice@example.test") {
		t.Errorf("reindex alice: %q", out)
	}
	if out := r.ok(t, "reindex", "--config", path); !strings.HasPrefix(out, "reindexed 2 bodies of all accounts") {
		t.Errorf("reindex: %q", out)
	}
	r.fails(t, []string{"reindex", "bob@example.test", "--config", path}, "no such account")
	st = openTestStore(t, dataDir)
	defer st.Close()
	a, _ := st.Account(context.Background(), "alice@example.test")
	mb, _ := st.Mailbox(context.Background(), a.ID, "INBOX")
	res, err := st.SearchText(context.Background(), a.ID, mb.ID, store.TextBody, "köln")
	if err != nil || len(res.Unindexed) != 0 || len(res.Matches) != 1 || res.Matches[0] != 1 {
		t.Errorf("search after reindex: %+v %v", res, err)
	}
}
