package interop

// POP3 beside IMAP on one mailbox, through `loft serve`: sizes agree
// between POP3 LIST/RETR and IMAP RFC822.SIZE (bare-LF mail included), RETR
// marks \Seen for IMAP and TOP does not, a POP3 QUIT's deletions reach an
// IMAP session in IDLE at once, and an IMAP expunge during a POP3 session
// makes RETR answer -ERR.

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// pop3Conn is a minimal POP3 client for these tests.
type pop3Conn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialPOP3(t *testing.T, p *loftProc, user, pass string) *pop3Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.Addrs["pop3"], netTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &pop3Conn{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expectOK("")
	c.expectOK("USER " + user)
	c.expectOK("PASS " + pass)
	return c
}

// cmd sends a command (none for "") and returns the status line.
func (c *pop3Conn) cmd(line string) string {
	c.t.Helper()
	c.conn.SetDeadline(time.Now().Add(netTimeout))
	if line != "" {
		fmt.Fprintf(c.conn, "%s\r\n", line)
	}
	resp, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("POP3 %q: %v", line, err)
	}
	return strings.TrimSuffix(resp, "\r\n")
}

func (c *pop3Conn) expectOK(line string) string {
	c.t.Helper()
	resp := c.cmd(line)
	if !strings.HasPrefix(resp, "+OK") {
		c.t.Fatalf("POP3 %q: %q", line, resp)
	}
	return resp
}

// body reads a multi-line body, unstuffed, with CRLF line endings.
func (c *pop3Conn) body() string {
	c.t.Helper()
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatal(err)
		}
		if line == ".\r\n" {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(line, "."))
	}
}

func TestInteropPOP3BesideIMAP(t *testing.T) {
	p := startLoft(t, "")
	const user = "carl@" + testDomain
	p.addAccount(t, user, pop3Password)
	for n := 1; n <= 3; n++ { // message 3 has bare LF line endings
		p.deliverLMTP(t, testMessage(n), user)
	}

	events := make(chan string, 16)
	idler := dialIMAP(t, p, user, pop3Password, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { events <- fmt.Sprintf("expunge %d", seq) },
	}})
	if _, err := idler.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	a := dialIMAP(t, p, user, pop3Password, nil)
	if _, err := a.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	imapMsgs, err := a.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{RFC822Size: true, UID: true}).Collect()
	if err != nil || len(imapMsgs) != 3 {
		t.Fatalf("IMAP FETCH: %d messages, %v", len(imapMsgs), err)
	}

	// Sizes: POP3 LIST = octets RETR sends = IMAP RFC822.SIZE.
	c := dialPOP3(t, p, user, pop3Password)
	for i, m := range imapMsgs {
		n := i + 1
		if got, want := c.expectOK(fmt.Sprint("LIST ", n)), fmt.Sprintf("+OK %d %d", n, m.RFC822Size); got != want {
			t.Errorf("LIST %d: %q, IMAP RFC822.SIZE %d", n, got, m.RFC822Size)
		}
	}
	c.expectOK("RETR 3")
	if body := c.body(); int64(len(body)) != imapMsgs[2].RFC822Size || strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\n") {
		t.Errorf("RETR 3 (bare LF as delivered): %d octets, IMAP says %d; %q", len(body), imapMsgs[2].RFC822Size, body)
	}
	c.expectOK("TOP 2 0")
	c.body()

	// RETR marked message 3 \Seen for IMAP; TOP left message 2 alone.
	seen := func() []imap.UID {
		t.Helper()
		if err := a.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		sd, err := a.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		return sd.AllUIDs()
	}
	want := []imap.UID{imapMsgs[2].UID}
	for i := 0; ; i++ {
		got := seen()
		if slices.Equal(got, want) {
			break
		}
		if i == 50 {
			t.Fatalf("IMAP sees \\Seen on UIDs %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// POP3 deletes message 1 at QUIT; the IMAP session in IDLE sees it at once.
	idle, err := idler.Idle()
	if err != nil {
		t.Fatal(err)
	}
	c.expectOK("DELE 1")
	select {
	case ev := <-events:
		t.Fatalf("IMAP saw %q before POP3's QUIT", ev)
	case <-time.After(200 * time.Millisecond):
	}
	c.expectOK("QUIT")
	select {
	case ev := <-events:
		if ev != "expunge 1" {
			t.Fatalf("IMAP in IDLE saw %q, want expunge 1", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("IMAP in IDLE did not see POP3's deletion")
	}
	idle.Close()
	idle.Wait()

	// IMAP expunges a message during a POP3 session (the POP3 session's
	// message 1, once message 2): RETR says -ERR, and the session goes on.
	c = dialPOP3(t, p, user, pop3Password)
	if err := a.Store(imap.UIDSetNum(imapMsgs[1].UID), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if resp := c.cmd("RETR 1"); resp != "-ERR Message is no longer in the mailbox (removed by another session)" {
		t.Errorf("RETR of a message IMAP expunged: %q", resp)
	}
	c.expectOK("RETR 2")
	c.body()
	c.expectOK("QUIT")
	if msgs, _ := p.accountUsage(t, user); msgs != "1" {
		t.Errorf("%s messages left, want 1", msgs)
	}
}
