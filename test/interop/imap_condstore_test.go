package interop

// CONDSTORE and QRESYNC (RFC 7162) against `loft serve`: go-imap v2's
// imapclient uses what it supports (STATUS and SELECT HIGHESTMODSEQ,
// FETCH MODSEQ and CHANGEDSINCE, STORE UNCHANGEDSINCE, SEARCH MODSEQ); it
// has no QRESYNC, so a QRESYNC resync is checked on the wire.

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func TestInteropIMAPGoImapCondstore(t *testing.T) {
	p := startLoft(t, "")
	const user, pass = "cs@example.test", "cs password"
	p.addAccount(t, user, pass)
	for i := 1; i <= 4; i++ {
		p.deliverLMTP(t, testMessage(i), user)
	}
	a := dialIMAP(t, p, user, pass, nil)
	if !a.Caps().Has(imap.CapCondStore) || !a.Caps().Has(imap.CapQResync) {
		t.Fatalf("capabilities: %v", a.Caps())
	}
	st, err := a.Status("INBOX", &imap.StatusOptions{NumMessages: true, HighestModSeq: true}).Wait()
	if err != nil || st.HighestModSeq == 0 {
		t.Fatalf("status: %+v %v", st, err)
	}
	sel, err := a.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil || sel.HighestModSeq != st.HighestModSeq || sel.NumMessages != 4 {
		t.Fatalf("select: %+v %v (status said %d)", sel, err, st.HighestModSeq)
	}
	known := sel.HighestModSeq

	// Another session changes message 2.
	b := dialIMAP(t, p, user, pass, nil)
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Label"}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}

	// A conditional store with the old modseq: 2 fails, 1 and 3 pass and
	// come back with their new modseqs (and no flags: .SILENT). The
	// FETCH with flags is the other session's change to 2, announced.
	msgs, err := a.Store(imap.UIDSetNum(1, 2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true},
		&imap.StoreOptions{UnchangedSince: known}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var passed []imap.UID
	for _, m := range msgs {
		if m.ModSeq > known && m.Flags == nil {
			passed = append(passed, m.UID)
		}
	}
	if fmt.Sprint(passed) != "[1 3]" {
		t.Fatalf("conditional store: %+v", msgs)
	}

	// What changed since the select: 1, 2 and 3, with their modseqs.
	changed, err := a.Fetch(imap.UIDSetNum(1, 2, 3, 4), &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: known}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range changed {
		got = append(got, fmt.Sprintf("%d:%v", m.UID, m.Flags))
		if m.ModSeq <= known {
			t.Errorf("UID %d: modseq %d not above %d", m.UID, m.ModSeq, known)
		}
	}
	// \Recent: a (IMAP4rev1) was the first session to select them.
	if strings.Join(got, " ") != `1:[\Flagged \Recent] 2:[$Label \Recent] 3:[\Flagged \Recent]` {
		t.Fatalf("CHANGEDSINCE: %s", strings.Join(got, " "))
	}
	sd, err := a.UIDSearch(&imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: known + 1}}, nil).Wait()
	if err != nil || fmt.Sprint(sd.AllUIDs()) != "[1 2 3]" || sd.ModSeq == 0 {
		t.Fatalf("SEARCH MODSEQ: %+v %v", sd, err)
	}
}

// A QRESYNC resync over the wire: after another session changed flags and
// expunged messages, SELECT (QRESYNC ...) reports exactly those.
func TestInteropIMAPQresyncResync(t *testing.T) {
	p := startLoft(t, "")
	const user, pass = "qr@example.test", "qr password"
	p.addAccount(t, user, pass)
	for i := 1; i <= 5; i++ {
		p.deliverLMTP(t, testMessage(i), user)
	}
	c := dialRaw(t, p)
	c.run(t, "a LOGIN "+user+` "`+pass+`"`)
	c.run(t, "b ENABLE QRESYNC")
	out := c.run(t, "c SELECT INBOX")
	uv := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(strings.Join(out, "\n"))
	hm := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(strings.Join(out, "\n"))
	if uv == nil || hm == nil {
		t.Fatalf("select: %q", out)
	}
	c.run(t, "d LOGOUT")

	o := dialIMAP(t, p, user, pass, nil)
	if _, err := o.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := o.Store(imap.UIDSetNum(1, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.UIDExpunge(imap.UIDSetNum(2)).Close(); err != nil {
		t.Fatal(err)
	}

	c = dialRaw(t, p)
	c.run(t, "a LOGIN "+user+` "`+pass+`"`)
	c.run(t, "b ENABLE QRESYNC")
	out = c.run(t, fmt.Sprintf("c SELECT INBOX (QRESYNC (%s %s))", uv[1], hm[1]))
	var sync []string
	for _, l := range out {
		if strings.Contains(l, "VANISHED") || strings.Contains(l, "FETCH") {
			sync = append(sync, regexp.MustCompile(` MODSEQ \(\d+\)`).ReplaceAllString(l, ""))
		}
	}
	want := []string{"* VANISHED (EARLIER) 2", `* 1 FETCH (UID 1 FLAGS (\Seen))`, `* 3 FETCH (UID 4 FLAGS (\Seen))`}
	if !slices.Equal(sync, want) {
		t.Fatalf("resync:\n got %q\nwant %q", sync, want)
	}
}

// rawIMAP is a line-level IMAP connection for what no client library does.
type rawIMAP struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, p *loftProc) *rawIMAP {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.Addrs["imap"], netTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawIMAP{conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(imapTimeout))
	if l, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting: %q %v", l, err)
	}
	return c
}

// run sends a command and returns its untagged responses; the tagged one
// must be OK.
func (c *rawIMAP) run(t *testing.T, line string) []string {
	t.Helper()
	tag, _, _ := strings.Cut(line, " ")
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		t.Fatal(err)
	}
	var out []string
	for range 100000 {
		l, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		l = strings.TrimRight(l, "\r\n")
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				t.Fatalf("%s: %s", line, l)
			}
			return out
		}
		out = append(out, l)
	}
	t.Fatalf("%s: no tagged response", line)
	return nil
}
