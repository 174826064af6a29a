package soak

// The end of a run: every mailbox of every account, read over IMAP, and
// the INBOX over POP3, held against the oracle.

import (
	"bufio"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// createFolders creates every IMAP client's folder in every account.
func createFolders(t *testing.T, l *load, addr string) {
	t.Helper()
	for _, a := range accounts {
		c, done, err := dialIMAP(l, addr, a, nil)
		if err != nil {
			t.Fatalf("%s: login: %v", a, err)
		}
		for n := range imapWorkers {
			if err := c.Create(folderOf(n), nil).Wait(); err != nil {
				t.Fatalf("%s: CREATE %s: %v", a, folderOf(n), err)
			}
		}
		c.Logout().Wait()
		done()
	}
}

// copiesOf is a snapshot of what the oracle knows of an account's copies.
func (o *oracle) copiesOf(account string) map[int]copyState {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[int]copyState{}
	for k, c := range o.copies {
		if k.account == account {
			out[k.id] = copyState{role: c.role, possible: slices.Clone(c.possible), frozen: c.frozen}
		}
	}
	return out
}

// verified is what the verification saw.
type verified struct {
	stored, certain, uncertain, uncertainStored int
}

func (v verified) String() string {
	return fmt.Sprintf("%d messages stored; %d copies certain, %d uncertain (a reply lost to a kill; %d of them stored)",
		v.stored, v.certain, v.uncertain, v.uncertainStored)
}

// verify reads every account's mailboxes and holds them against the
// oracle: each copy stored at most once, where and with the flags the
// oracle allows, byte-exact; nothing stored that the load did not make;
// the POP3 INBOX the same as the IMAP one, with the UIDLs the POP3 clients
// saw before.
func verify(t *testing.T, l *load, imapAddr, popAddr string) verified {
	t.Helper()
	const maxReports = 30
	reports := 0
	report := func(format string, args ...any) {
		t.Helper()
		if reports++; reports <= maxReports {
			t.Errorf(format, args...)
		} else if reports == maxReports+1 {
			t.Errorf("… more problems not shown")
		}
	}
	var v verified
	for ai, a := range accounts {
		found := map[int][]place{}
		readIMAP(t, l, imapAddr, a, func(mailbox string, m *imapclient.FetchMessageBuffer) {
			if len(m.BodySection) != 1 {
				report("%s %s UID %d: no body", a, mailbox, m.UID)
				return
			}
			body := m.BodySection[0].Bytes
			id := l.o.idOf(body)
			if l.o.role(copyKey{a, id}) == "" {
				report("%s %s UID %d: no message of this load: %.100q", a, mailbox, m.UID, body)
				return
			}
			if ok, err := l.o.sumOK(id, body); !ok {
				report("%s %s UID %d: message %d differs from what was sent (%v)", a, mailbox, m.UID, id, err)
			}
			found[id] = append(found[id], place{mailbox: mailbox, flags: flagString(m.Flags)})
			v.stored++
		})
		for id, c := range l.o.copiesOf(a) {
			got := found[id]
			if len(c.possible) == 1 {
				v.certain++
			} else {
				v.uncertain++
				v.uncertainStored += len(got)
			}
			switch {
			case len(got) > 1:
				report("%s: message %d (%s) is stored %d times: %v; want once at most, at one of %v", a, id, c.role, len(got), got, c.possible)
			case len(got) == 0 && !slices.Contains(c.possible, gone):
				report("%s: message %d (%s) is missing; want it at %v", a, id, c.role, c.possible)
			case len(got) == 1 && !slices.Contains(c.possible, got[0]):
				report("%s: message %d (%s) is at %v; want it at one of %v", a, id, c.role, got[0], c.possible)
			}
		}
		// POP3 sees the same INBOX, with the UIDLs it had. (Read after
		// IMAP: RETR marks messages \Seen.)
		var inbox []int
		for id, ps := range found {
			for _, p := range ps {
				if p.mailbox == "INBOX" {
					inbox = append(inbox, id)
				}
			}
		}
		pop := readPOP3(t, l, popAddr, a)
		var popIDs []int
		for uidl, id := range pop {
			popIDs = append(popIDs, id)
			if before, ok := l.pops[ai].ids[uidl]; ok && before != 0 && before != id {
				report("%s: UIDL %s is message %d over POP3, but was message %d before", a, uidl, id, before)
			}
		}
		slices.Sort(inbox)
		slices.Sort(popIDs)
		if !slices.Equal(inbox, popIDs) {
			report("%s: POP3 lists %d messages %v, the IMAP INBOX holds %d %v", a, len(popIDs), clip(popIDs), len(inbox), clip(inbox))
		}
	}
	return v
}

func clip(ids []int) []int {
	if len(ids) > 10 {
		return ids[:10]
	}
	return ids
}

// readIMAP calls fn for every message of every mailbox of an account,
// read with EXAMINE and FETCH (UID FLAGS BODY.PEEK[]) a batch at a time.
func readIMAP(t *testing.T, l *load, addr, account string, fn func(mailbox string, m *imapclient.FetchMessageBuffer)) {
	t.Helper()
	c, done, err := dialIMAP(l, addr, account, nil)
	if err != nil {
		t.Fatalf("verify %s: login: %v", account, err)
	}
	defer done()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("verify %s: LIST: %v", account, err)
	}
	for _, mb := range list {
		sel, err := c.Select(mb.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("verify %s: EXAMINE %s: %v", account, mb.Mailbox, err)
		}
		const batch = 200
		for first := uint32(1); first <= sel.NumMessages; first += batch {
			var set imap.SeqSet
			set.AddRange(first, min(first+batch-1, sel.NumMessages))
			msgs, err := c.Fetch(set, &imap.FetchOptions{
				UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
			}).Collect()
			if err != nil {
				t.Fatalf("verify %s: FETCH %v in %s: %v", account, set, mb.Mailbox, err)
			}
			for _, m := range msgs {
				fn(mb.Mailbox, m)
			}
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("verify %s: LOGOUT: %v", account, err)
	}
}

// readPOP3 downloads an account's INBOX over POP3 (UIDL, RETR, QUIT
// without DELE) and returns its message ids by UIDL.
func readPOP3(t *testing.T, l *load, addr, account string) map[string]int {
	t.Helper()
	conn, done, err := l.dial(addr)
	if err != nil {
		t.Fatalf("verify %s: POP3: %v", account, err)
	}
	defer done()
	c := &popConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	must := func(line string) {
		t.Helper()
		if _, err := c.cmd(line); err != nil {
			t.Fatalf("verify %s: POP3 %s: %v", account, strings.Fields(line + " greeting")[0], err)
		}
	}
	for _, line := range []string{"", "USER " + account, "PASS " + password, "UIDL"} {
		must(line)
	}
	data, err := c.multi()
	if err != nil {
		t.Fatalf("verify %s: POP3 UIDL: %v", account, err)
	}
	ids := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\r\n") {
		var e listing
		if _, err := fmt.Sscanf(line, "%d %s", &e.n, &e.uidl); err != nil {
			continue
		}
		must(fmt.Sprintf("RETR %d", e.n))
		body, err := c.multi()
		if err != nil {
			t.Fatalf("verify %s: POP3 RETR %d: %v", account, e.n, err)
		}
		id := l.o.idOf(body)
		if ok, err := l.o.sumOK(id, body); !ok {
			t.Errorf("verify %s: POP3 RETR %d (UIDL %s): message %d differs from what was sent (%v)", account, e.n, e.uidl, id, err)
		}
		if _, dup := ids[e.uidl]; dup {
			t.Errorf("verify %s: POP3 UIDL %s listed twice", account, e.uidl)
		}
		ids[e.uidl] = id
	}
	must("QUIT")
	return ids
}
