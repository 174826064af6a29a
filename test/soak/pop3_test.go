package soak

// The POP3 clients of the load, one per account, on a small client of
// their own. A client learns each new message's id with TOP n 0 (UIDLs are
// stable, so once), downloads its own copies with RETR and checks them,
// deletes the pop/del ones at once and the pop/keep ones after they have
// stayed a few sessions on the server; deletions count only once QUIT
// says +OK, and now and then it thinks better of them (RSET).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"time"
)

// Bounds of one POP3 session.
const (
	popRetrsPerSession = 12
	popKeepSessions    = 3 // a pop/keep copy stays this many sessions after its download
)

// popConn is a POP3 connection.
type popConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// popError is a -ERR reply.
type popError string

func (e popError) Error() string { return string(e) }

// cmd sends a command (none for the greeting) and returns the +OK line;
// a -ERR reply is a popError.
func (p *popConn) cmd(line string) (string, error) {
	p.conn.SetDeadline(time.Now().Add(netTimeout))
	if line != "" {
		if _, err := io.WriteString(p.conn, line+"\r\n"); err != nil {
			return "", err
		}
	}
	resp, err := p.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	resp = strings.TrimRight(resp, "\r\n")
	if !strings.HasPrefix(resp, "+OK") {
		return "", popError(fmt.Sprintf("%s: %s", strings.Fields(line + " ?")[0], resp))
	}
	return resp, nil
}

// multi reads a multi-line response's data, dot-unstuffed.
func (p *popConn) multi() ([]byte, error) {
	var b bytes.Buffer
	for {
		line, err := p.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			b.Write(line)
			continue
		}
		if err != nil {
			return nil, err
		}
		if bytes.Equal(line, []byte(".\r\n")) {
			return b.Bytes(), nil
		}
		// A continuation of a long line never starts a line.
		if b.Len() == 0 || bytes.HasSuffix(b.Bytes(), []byte("\n")) {
			line = bytes.TrimPrefix(line, []byte("."))
		}
		b.Write(line)
	}
}

// popClient is the POP3 client of one account.
type popClient struct {
	l       *load
	account string
	rng     *rand.Rand
	ids     map[string]int // UIDL -> message id; 0: gone before it could be read
	kept    map[int]int    // pop/keep copies downloaded -> sessions since
}

func (p *popClient) who() string { return "pop3 " + p.account }

func (p *popClient) loop() {
	p.l.reconnect("pop3", func(addr string) {
		if err := p.session(addr); err != nil {
			var pe popError
			if errors.As(err, &pe) {
				p.l.fail("%s: %v", p.who(), err)
			} else {
				p.l.broken(p.who(), err)
			}
		}
		p.l.pause(popPause)
	})
}

// listing is one message of a session's UIDL listing.
type listing struct {
	n    int
	uidl string
}

func (p *popClient) session(addr string) error {
	conn, done, err := p.l.dial(addr)
	if err != nil {
		return err
	}
	defer done()
	c := &popConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	for _, line := range []string{"", "USER " + p.account, "PASS " + password, "UIDL"} {
		if _, err := c.cmd(line); err != nil {
			return err
		}
	}
	data, err := c.multi()
	if err != nil {
		return err
	}
	p.l.count("pop3-sessions", 1)
	var list []listing
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\r\n") {
		var e listing
		if _, err := fmt.Sscanf(line, "%d %s", &e.n, &e.uidl); err == nil {
			list = append(list, e)
		}
	}
	// Learn the ids of new messages.
	for _, e := range list {
		if _, ok := p.ids[e.uidl]; ok {
			continue
		}
		if _, err := c.cmd(fmt.Sprintf("TOP %d 0", e.n)); err != nil {
			if errors.As(err, new(popError)) {
				p.ids[e.uidl] = 0 // moved or deleted by an IMAP client since the snapshot
				continue
			}
			return err
		}
		header, err := c.multi()
		if err != nil {
			return err
		}
		id := p.l.o.idOf(header)
		if p.l.o.role(copyKey{p.account, id}) == "" {
			p.l.fail("%s: UIDL %s is no message of this load: %.200q", p.who(), e.uidl, header)
		}
		p.ids[e.uidl] = id
	}
	// Download and delete its own copies.
	var dels, retrs []copyKey
	for _, e := range list {
		if len(retrs) >= popRetrsPerSession {
			break
		}
		k := copyKey{p.account, p.ids[e.uidl]}
		role, ok := p.l.o.inInbox(k)
		if !ok || role != rolePOPDel && role != rolePOPKeep {
			continue
		}
		since, downloaded := p.kept[k.id]
		if role == rolePOPDel || !downloaded {
			if err := p.retr(c, e, k); err != nil {
				return err
			}
			retrs = append(retrs, k)
			if role == rolePOPKeep {
				p.kept[k.id] = 0
				continue
			}
		} else if since < popKeepSessions {
			continue
		}
		if _, err := c.cmd(fmt.Sprintf("DELE %d", e.n)); err != nil {
			return err
		}
		dels = append(dels, k)
	}
	if len(dels) > 0 && p.rng.IntN(10) == 0 {
		if _, err := c.cmd("RSET"); err != nil {
			return err
		}
		p.l.count("pop3-rset", 1)
		dels = nil
	}
	// RETR marks \Seen (pop3.mark_seen, on by default) in the background,
	// and the QUIT reply waits for it only when it also deletes: after a
	// kill, a downloaded copy may or may not be \Seen.
	seen := func(k copyKey) {
		if p.l.crash {
			p.l.o.alsoPossible(k, place{mailbox: "INBOX", flags: `\Seen`})
		} else {
			p.l.o.ack(k, place{mailbox: "INBOX", flags: `\Seen`})
		}
	}
	if _, err := c.cmd("QUIT"); err != nil {
		for _, k := range retrs {
			p.l.o.alsoPossible(k, place{mailbox: "INBOX", flags: `\Seen`})
		}
		for _, k := range dels {
			p.l.o.lost(k, gone)
		}
		return err
	}
	for _, k := range retrs {
		seen(k)
	}
	for _, k := range dels {
		p.l.o.ack(k, gone)
		delete(p.kept, k.id)
	}
	for id := range p.kept {
		p.kept[id]++
	}
	p.l.count("pop3-retr", int64(len(retrs)))
	p.l.count("pop3-dele", int64(len(dels)))
	return nil
}

// retr downloads message e and holds it against the oracle.
func (p *popClient) retr(c *popConn, e listing, k copyKey) error {
	if _, err := c.cmd(fmt.Sprintf("RETR %d", e.n)); err != nil {
		return err
	}
	body, err := c.multi()
	if err != nil {
		return err
	}
	if id := p.l.o.idOf(body); id != k.id {
		p.l.fail("%s: RETR %d (UIDL %s) is message %d, want %d", p.who(), e.n, e.uidl, id, k.id)
	} else if ok, err := p.l.o.sumOK(id, body); !ok {
		p.l.fail("%s: RETR %d: message %d differs from what was sent (%v)", p.who(), e.n, id, err)
	}
	return nil
}
