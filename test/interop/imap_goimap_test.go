package interop

// go-imap v2's client (imapclient) against `loft serve`: folders, fetch of
// envelopes, structures and sections, APPEND, MOVE, SEARCH, and two
// sessions of one account, one in IDLE seeing the other's changes; and a
// POP3 session after an IMAP MOVE.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func TestInteropIMAPGoImapClient(t *testing.T) {
	p := startLoft(t, "")
	const user, pass = "ann@example.test", "ann password"
	p.addAccount(t, user, pass)
	for i := 1; i <= 3; i++ {
		p.deliverLMTP(t, testMessage(i), user)
	}

	a := dialIMAP(t, p, user, pass, nil)
	sel, err := a.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 3 {
		t.Fatalf("select: %+v %v", sel, err)
	}
	msgs, err := a.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, RFC822Size: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("fetch: %d %v", len(msgs), err)
	}
	for i, m := range msgs {
		if m.Envelope == nil || m.Envelope.Subject == "" || m.BodyStructure == nil || len(m.BodySection) != 1 {
			t.Fatalf("message %d: %+v", i+1, m)
		}
		if got := string(m.BodySection[0].Bytes); int64(len(got)) != m.RFC822Size || !strings.Contains(got, m.Envelope.Subject) {
			t.Errorf("message %d: body of %d bytes, size %d", i+1, len(got), m.RFC822Size)
		}
	}

	if err := a.Create("Work/Sub", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := a.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
	}
	if got := strings.Join(names, ","); got != "INBOX,Archive,Drafts,Junk,Sent,Trash,Work,Work/Sub" {
		t.Errorf("LIST: %s", got)
	}

	sent := "From: ann@example.test\r\nTo: x@example.net\r\nSubject: sent by go-imap\r\n\r\nhello\r\n"
	date := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	app := a.Append("Sent", int64(len(sent)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: date})
	io.WriteString(app, sent)
	app.Close()
	ad, err := app.Wait()
	if err != nil || ad.UID != 1 {
		t.Fatalf("append: %+v %v", ad, err)
	}

	// Session B idles and sees A's changes and a delivery.
	events := make(chan string, 16)
	b := dialIMAP(t, p, user, pass, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { events <- fmt.Sprintf("expunge %d", seq) },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				events <- fmt.Sprintf("exists %d", *d.NumMessages)
			}
		},
		Fetch: func(m *imapclient.FetchMessageData) {
			buf, _ := m.Collect()
			if buf != nil {
				events <- fmt.Sprintf("flags %d %v", buf.SeqNum, buf.Flags)
			}
		},
	}})
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := b.Idle()
	if err != nil {
		t.Fatal(err)
	}
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("session B saw %q, want %q", got, want)
			}
		case <-time.After(time.Second):
			t.Fatalf("session B did not see %q within a second", want)
		}
	}
	if err := a.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	expect(`flags 1 [\Seen]`)
	if _, err := a.Move(imap.SeqSetNum(2), "Work/Sub").Wait(); err != nil {
		t.Fatal(err)
	}
	expect("expunge 2")
	p.deliverLMTP(t, testMessage(4), user)
	expect("exists 3")
	// POP3 deleting at QUIT shows as EXPUNGE in IDLE.
	pop3Session(t, p, user, pass, "DELE 1")
	expect("expunge 1")
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}

	// A learns of the delivery at its next command.
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := a.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(sd.AllUIDs()); got != "[3 4]" { // UID 1 went by POP3
		t.Errorf("UID SEARCH UNSEEN: %s", got)
	}
	st, err := a.Status("Work/Sub", &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait()
	if err != nil || *st.NumMessages != 1 || st.UIDNext != 2 {
		t.Errorf("STATUS Work/Sub: %+v %v", st, err)
	}

	// The message moved out of INBOX is gone from the next POP3 session.
	if n := pop3Session(t, p, user, pass); n != 2 {
		t.Errorf("POP3 STAT after MOVE: %d messages, want 2", n)
	}
}

// pop3Session logs in over POP3, runs the commands (each must succeed),
// quits, and returns STAT's message count at login.
func pop3Session(t *testing.T, p *loftProc, user, pass string, cmds ...string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.Addrs["pop3"], netTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(netTimeout))
	r := bufio.NewReader(conn)
	cmd := func(line string) string {
		if line != "" {
			fmt.Fprintf(conn, "%s\r\n", line)
		}
		resp, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(resp, "+OK") {
			t.Fatalf("POP3 %q: %q %v", line, resp, err)
		}
		return resp
	}
	cmd("")
	cmd("USER " + user)
	cmd("PASS " + pass)
	var n, size int
	fmt.Sscanf(cmd("STAT"), "+OK %d %d", &n, &size)
	for _, c := range cmds {
		cmd(c)
	}
	cmd("QUIT")
	return n
}
