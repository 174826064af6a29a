package store

import (
	"context"
	"loft/internal/store/storetest"
	"slices"
	"testing"
)

// TestMailboxNameTricksStayInAccount: whatever alice names, she creates,
// finds and selects only her own mailboxes; bob's mail is unreachable and
// unchanged.
func TestMailboxNameTricksStayInAccount(t *testing.T) {
	s := openTest(t, Unlimited)
	ctx := context.Background()
	alice := addAccount(t, s, "alice@example.org", nil)
	bob := addAccount(t, s, "bob@example.org", nil)
	deliver(t, s, "Subject: for bob\r\n\r\nsecret\r\n", "bob@example.org")
	bobBefore, err := s.Mailboxes(ctx, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	bobIDs := map[int64]bool{}
	for _, m := range bobBefore {
		bobIDs[m.ID] = true
	}
	for _, name := range storetest.NameTricks {
		if mb, err := s.CreateMailbox(ctx, alice.ID, name, ""); err == nil {
			if mb.AccountID != alice.ID || bobIDs[mb.ID] {
				t.Errorf("CreateMailbox(alice, %q) made %+v", name, mb)
			}
		}
		if mb, err := s.Mailbox(ctx, alice.ID, name); err == nil && (mb.AccountID != alice.ID || bobIDs[mb.ID]) {
			t.Errorf("Mailbox(alice, %q) = bob's %+v", name, mb)
		}
		if sel, err := s.Select(ctx, alice.ID, name); err == nil && (sel.Mailbox.AccountID != alice.ID || len(sel.UIDs) != 0) {
			t.Errorf("Select(alice, %q) = %+v", name, sel)
		}
		s.RenameMailbox(ctx, alice.ID, name, name+"-renamed")
		s.DeleteMailbox(ctx, alice.ID, name+"-renamed")
		s.DeleteMailbox(ctx, alice.ID, name)
		s.SetSubscribed(ctx, alice.ID, name, false)
	}
	bobAfter, err := s.Mailboxes(ctx, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(bobBefore, bobAfter, func(a, b *Mailbox) bool { return *a == *b }) {
		t.Errorf("bob's mailboxes changed:\n%+v\n%+v", bobBefore, bobAfter)
	}
	// Names that are not valid UTF-8, or hold control characters, are
	// refused.
	for _, bad := range []string{"\xff\xfe", "INBOX\x00bob", "a\x01b", "tab\there", "\xc0\xae\xc0\xae/bob/INBOX"} {
		if _, err := s.CreateMailbox(ctx, alice.ID, bad, ""); err == nil {
			t.Errorf("CreateMailbox(%q) accepted", bad)
		}
	}
}

// FuzzMailboxName: no name, however encoded, creates, renames or finds
// a mailbox outside the account that asks.
func FuzzMailboxName(f *testing.F) {
	for _, n := range storetest.NameTricks {
		f.Add(n)
	}
	for _, n := range []string{"INBOX", "inbox/Sub", "Archive/2024", "Sent", "Ünïcödé/名前", "a/b/c/d"} {
		f.Add(n)
	}
	s, err := Open(context.Background(), Options{Dir: f.TempDir(), DefaultQuota: Unlimited})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	ctx := context.Background()
	alice, err := s.CreateAccount(ctx, "alice@example.org", "h", nil)
	if err != nil {
		f.Fatal(err)
	}
	bob, err := s.CreateAccount(ctx, "bob@example.org", "h", nil)
	if err != nil {
		f.Fatal(err)
	}
	bobBefore, _ := s.Mailboxes(ctx, bob.ID)
	f.Fuzz(func(t *testing.T, name string) {
		if len(name) > 1000 {
			return
		}
		if mb, err := s.CreateMailbox(ctx, alice.ID, name, ""); err == nil {
			if mb.AccountID != alice.ID || mb.Name != CanonicalName(name) {
				t.Fatalf("CreateMailbox(%q) = %+v", name, mb)
			}
			if validName(mb.Name) != nil {
				t.Fatalf("stored invalid name %q", mb.Name)
			}
		}
		if mb, err := s.Mailbox(ctx, alice.ID, name); err == nil && mb.AccountID != alice.ID {
			t.Fatalf("Mailbox(alice, %q) = %+v", name, mb)
		}
		s.RenameMailbox(ctx, alice.ID, name, "renamed/"+name)
		s.DeleteMailbox(ctx, alice.ID, "renamed/"+name)
		s.DeleteMailbox(ctx, alice.ID, name)
		if CanonicalName(CanonicalName(name)) != CanonicalName(name) {
			t.Fatalf("CanonicalName not idempotent on %q", name)
		}
		bobNow, _ := s.Mailboxes(ctx, bob.ID)
		if !slices.EqualFunc(bobBefore, bobNow, func(a, b *Mailbox) bool { return *a == *b }) {
			t.Fatalf("name %q changed bob's mailboxes", name)
		}
	})
}
