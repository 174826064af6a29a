package imap

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"loft/internal/store"
)

// deliverAt stores a message in INBOX with the given internal date.
func (ts *testServer) deliverAt(msg string, date time.Time) {
	ts.t.Helper()
	res, err := ts.st.Deliver(context.Background(), strings.NewReader(msg),
		store.DeliverOptions{Recipients: []string{testUser}, InternalDate: date})
	if err != nil || res[0].Err != nil {
		ts.t.Fatalf("deliver: %v %v", err, res)
	}
}

// fill delivers n copies of msg at once (their order among themselves does
// not matter), so that the messages delivered next get later numbers.
func (ts *testServer) fill(n int, msg string, date time.Time) {
	ts.t.Helper()
	var wg sync.WaitGroup
	jobs := make(chan int)
	var mu sync.Mutex
	var failed error
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				res, err := ts.st.Deliver(context.Background(), strings.NewReader(msg),
					store.DeliverOptions{Recipients: []string{testUser}, InternalDate: date})
				if err == nil && res[0].Err != nil {
					err = res[0].Err
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if failed != nil {
		ts.t.Fatal(failed)
	}
}

func sortMsg(subject, date string, extra ...string) string {
	h := "From: someone@example.org\r\nSubject: " + subject + "\r\nDate: " + date + "\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\nbody\r\n"
}

var (
	oldDate = time.Date(1990, 1, 1, 12, 0, 0, 0, time.UTC)
	newDate = time.Date(1995, 6, 1, 12, 0, 0, 0, time.UTC)
)

// TestSortRFC5256Examples replays the SORT examples of RFC 5256 §3 on
// mailboxes built to give their answers: base subjects ("Re:", blobs,
// "(fwd)", case), REVERSE affecting one criterion, and no match.
func TestSortRFC5256Examples(t *testing.T) {
	ts := newTestServer(t)
	// A282: 882 messages, of which 2, 84 and 882 arrived since 1994.
	filler := sortMsg("filler", "Mon, 1 Jan 1990 00:00:00 +0000")
	ts.fill(1, filler, oldDate)
	ts.deliverAt(sortMsg("Re: [list] apple", "Mon, 1 Jan 1990 00:00:00 +0000"), newDate)
	ts.fill(81, filler, oldDate)
	ts.deliverAt(sortMsg("BANANA (fwd)", "Mon, 1 Jan 1990 00:00:00 +0000"), newDate)
	ts.fill(797, filler, oldDate)
	ts.deliverAt(sortMsg("=?utf-8?q?Fwd=3A_cherry?=", "Mon, 1 Jan 1990 00:00:00 +0000"), newDate)
	c := ts.login(false)
	selectInbox(c, 882)
	c.cmd("A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994", "* SORT 2 84 882", "A282 OK SORT completed")

	// A283: five messages in two base subjects, each by date descending.
	_, err := ts.st.CreateMailbox(context.Background(), ts.acct.ID, "Five", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{
		sortMsg("Re: Beta", "Wed, 5 Jan 2000 10:00:00 +0000"),
		sortMsg("beta", "Sat, 1 Jan 2000 10:00:00 +0000"),
		sortMsg("Fwd: alpha", "Mon, 3 Jan 2000 10:00:00 +0000"),
		sortMsg("[ann] ALPHA (fwd)", "Sun, 2 Jan 2000 10:00:00 +0000"),
		sortMsg("alpha", "Tue, 4 Jan 2000 05:00:00 -0500"), // 10:00 UTC
	} {
		if _, err := ts.st.Append(context.Background(), ts.acct.ID, "Five", strings.NewReader(m), store.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	selectMailbox(c, "SELECT", "Five", 5)
	c.cmd("A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "* SORT 5 3 4 1 2", "A283 OK SORT completed")
	c.cmd(`A284 SORT (SUBJECT) US-ASCII TEXT "not in mailbox"`, "* SORT", "A284 OK SORT completed")
	// REVERSE reverses one criterion only, not the implicit sequence order.
	c.cmd("a SORT (REVERSE SUBJECT) UTF-8 ALL", "* SORT 1 2 3 4 5", "a OK SORT completed")
	c.cmd("b UID SORT (DATE) UTF-8 ALL", "* SORT 2 4 3 5 1", "b OK SORT completed")
	c.cmd("c SORT (ARRIVAL) UTF-8 ALL", "* SORT 1 2 3 4 5", "c OK SORT completed")
	c.cmd("d SORT (SUBJECT) KOI8-R ALL", "d NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset")
	c.cmd("e SORT (NAME) UTF-8 ALL", "e BAD Unknown sort criterion NAME")
	c.cmd("f SORT SUBJECT UTF-8 ALL", `re:^f BAD .*`)
}

// TestSortAddressesAndDisplay checks FROM, TO, CC (addr-mailbox, RFC 5256)
// and DISPLAYFROM, DISPLAYTO (RFC 5957 §3: the decoded display name, else
// the address), compared with i;unicode-casemap: case and accents of a
// decomposed form collate as RFC 5051 says, absent fields first.
func TestSortAddressesAndDisplay(t *testing.T) {
	ts := newTestServer(t)
	for _, m := range []string{
		"From: Zed <aaron@example.org>\r\nTo: b@example.org\r\nCc: c@example.org\r\nSubject: 1\r\n\r\nx\r\n",
		"From: =?utf-8?q?=C3=89mile?= <zoe@example.org>\r\nTo: A@example.org\r\nSubject: 2\r\n\r\nx\r\n",
		"From: bob@example.org\r\nTo: \"Yann\" <a@example.org>\r\nCc: b@example.org\r\nSubject: 3\r\n\r\nx\r\n",
		"From: Émile <Bob@example.org>\r\nSubject: 4\r\n\r\nx\r\n",
	} {
		ts.deliver(m)
	}
	c := ts.login(false)
	selectInbox(c, 4)
	for _, tc := range []struct{ crit, want string }{
		{"FROM", "* SORT 1 3 4 2"},        // aaron, bob, Bob (equal: by number), zoe
		{"TO", "* SORT 4 2 3 1"},          // "", A, a, b
		{"CC", "* SORT 2 4 3 1"},          // "", "", b, c
		{"DISPLAYFROM", "* SORT 3 2 4 1"}, // bob@example.org, Émile, Émile, Zed
		{"DISPLAYTO", "* SORT 4 2 1 3"},   // "", A@example.org, b@example.org, Yann
		{"REVERSE DISPLAYFROM", "* SORT 1 2 4 3"},
	} {
		c.cmd("a SORT ("+tc.crit+") UTF-8 ALL", tc.want, "a OK SORT completed")
	}
}

// TestESort checks SORT RETURN (RFC 5267 §3): ESEARCH results in sort
// order, MIN and MAX as the first and last of that order, ranges only
// where the numbers ascend.
func TestESort(t *testing.T) {
	ts := newTestServer(t)
	for _, s := range []string{"d", "c", "a", "b", "e"} {
		ts.deliver(sortMsg(s, "Mon, 1 Jan 1990 00:00:00 +0000"))
	}
	c := ts.login(false)
	selectInbox(c, 5)
	c.cmd("E01 UID SORT RETURN () (REVERSE SUBJECT) UTF-8 ALL", `* ESEARCH (TAG "E01") UID ALL 5,1:2,4,3`, "E01 OK SORT completed")
	c.cmd("E02 SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL", `* ESEARCH (TAG "E02") MIN 3 MAX 5 COUNT 5 ALL 3:4,2,1,5`, "E02 OK SORT completed")
	c.cmd("E03 SORT RETURN (COUNT) (SUBJECT) UTF-8 SUBJECT zzz", `* ESEARCH (TAG "E03") COUNT 0`, "E03 OK SORT completed")
	c.cmd("E04 SORT RETURN (SAVE) (SUBJECT) UTF-8 SUBJECT a", "E04 OK SORT completed")
	c.cmd("E05 FETCH $ UID", "* 3 FETCH (UID 3)", "E05 OK FETCH completed")
	c.cmd("E06 SORT RETURN (FOO) (SUBJECT) UTF-8 ALL", "E06 BAD Unknown return option FOO")
}

func TestSortCapabilities(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	out := c.run("a CAPABILITY")
	for _, capa := range []string{"SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "PREVIEW"} {
		if !strings.Contains(out[0]+" ", " "+capa+" ") {
			t.Errorf("capability %s missing: %s", capa, out[0])
		}
	}
}
