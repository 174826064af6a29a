// This file holds loftbench's own IMAP client: just enough of RFC 9051 to drive a server
// hard and cheaply. It reads responses line by line with bufio, skips literal data without
// copying it (unless asked to keep it), and writes commands from pre-built strings, so that
// the server, not the client, is what a run measures. It does not parse FETCH data: the
// benchmarks only count responses and bytes.

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Limits of the client, so that a confused server cannot make it allocate without end.
const (
	// imapMaxLine bounds a response line without its literals: a FETCH of ENVELOPE and
	// BODYSTRUCTURE for one message is a few KB; 1 MiB is far beyond any sane one.
	imapMaxLine = 1 << 20
	// imapMaxLiteral bounds one literal: the largest message a benchmark fetches whole.
	imapMaxLiteral = 1 << 30
)

// imapConn is one IMAP connection. It runs one command at a time.
type imapConn struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration // limit for one command, set as the connection's deadline
	tagN    int
	// caps is the last capability list the server gave, upper-case, with a space at each
	// end so that hasCap can look for " NAME ".
	caps string
	// keep makes read keep each literal's data in the response (tests); otherwise the data
	// is skipped in the read buffer and only its size is counted.
	keep bool
	resp imapResponse // reused by every read
	// wire counts the bytes received; inflated, once COMPRESS is active (imapsync.go), the
	// bytes after inflating them.
	wire     *countingConn
	inflated *countingReader
}

// imapResponse is one server response: a tagged or untagged response or a continuation
// request, with any literals it carries.
type imapResponse struct {
	// text is the response without its CRLFs and with each literal's data left out (the
	// "{N}" announcing it stays), e.g. `* 3 FETCH (UID 7 BODY[] {1234})`. It is only valid
	// until the next read.
	text []byte
	// lits holds the literals' data when the connection keeps them.
	lits [][]byte
	// litBytes is the size of all the response's literals.
	litBytes int64
}

// imapError is a tagged NO or BAD (or an unexpected BYE).
type imapError struct {
	Status string // "NO", "BAD" or "BYE"
	Text   string // the rest of the line
}

func (e *imapError) Error() string { return e.Status + " " + e.Text }

// dialIMAP connects and reads the greeting, which must be "* OK" (RFC 9051 §7.1.1); its
// CAPABILITY response code, if any, is remembered. readBuf sets the read buffer's size: big
// for bulk fetches, small for the thousand idle sessions.
func dialIMAP(ctx context.Context, addr string, timeout time.Duration, readBuf int) (*imapConn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	wire := &countingConn{Conn: conn}
	c := &imapConn{conn: conn, r: bufio.NewReaderSize(wire, readBuf), w: bufio.NewWriter(wire), timeout: timeout, wire: wire}
	conn.SetDeadline(time.Now().Add(timeout))
	resp, err := c.read()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if !bytes.HasPrefix(resp.text, []byte("* OK")) {
		conn.Close()
		return nil, fmt.Errorf("greeting: %q", resp.text)
	}
	c.noteCaps(resp.text)
	return c, nil
}

// close closes the connection at once.
func (c *imapConn) close() { c.conn.Close() }

// hasCap reports whether the server announced the capability name (upper-case).
func (c *imapConn) hasCap(name string) bool {
	return strings.Contains(c.caps, " "+name+" ")
}

// noteCaps remembers the list of a "* CAPABILITY ..." response or a "[CAPABILITY ...]" code.
func (c *imapConn) noteCaps(text []byte) {
	var list []byte
	if rest, ok := bytes.CutPrefix(text, []byte("* CAPABILITY ")); ok {
		list = rest
	} else if i := bytes.Index(text, []byte("[CAPABILITY ")); i >= 0 {
		list = text[i+len("[CAPABILITY "):]
		if j := bytes.IndexByte(list, ']'); j >= 0 {
			list = list[:j]
		}
	} else {
		return
	}
	c.caps = " " + strings.ToUpper(string(list)) + " "
}

// read reads one response with all its literals.
func (c *imapConn) read() (*imapResponse, error) {
	r := &c.resp
	r.text, r.lits, r.litBytes = r.text[:0], r.lits[:0], 0
	for {
		for { // one line, which may be longer than the read buffer
			frag, err := c.r.ReadSlice('\n')
			if len(r.text)+len(frag) > imapMaxLine {
				return nil, fmt.Errorf("response line longer than %d bytes", imapMaxLine)
			}
			r.text = append(r.text, frag...)
			if err == nil {
				break
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				if errors.Is(err, io.EOF) && len(r.text) > 0 {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
		}
		r.text = bytes.TrimSuffix(bytes.TrimSuffix(r.text, []byte("\n")), []byte("\r"))
		n, ok := literalSize(r.text)
		if !ok {
			return r, nil
		}
		if n > imapMaxLiteral {
			return nil, fmt.Errorf("literal of %d bytes is over the client's limit", n)
		}
		if c.keep {
			data := make([]byte, n)
			if _, err := io.ReadFull(c.r, data); err != nil {
				return nil, err
			}
			r.lits = append(r.lits, data)
		} else if _, err := c.r.Discard(int(n)); err != nil {
			return nil, err
		}
		r.litBytes += n
	}
}

// literalSize returns N when a response line ends in a literal's "{N}" or, for BINARY
// (RFC 3516), "~{N}"; the data follows the line's CRLF (RFC 9051 §4.3).
func literalSize(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 || open+1 >= len(line)-1 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(line[open+1:len(line)-1]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// send writes "TAG line" and returns the tag; the caller flushes.
func (c *imapConn) send(line string) string {
	c.tagN++
	tag := "a" + strconv.Itoa(c.tagN)
	c.w.WriteString(tag)
	c.w.WriteByte(' ')
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
	return tag
}

// command runs one command: it sends line with a fresh tag and reads responses up to the
// tagged one, giving every untagged response to untagged (which may be nil). It returns the
// text of the tagged OK after "OK "; a NO or BAD is an *imapError, anything else (I/O,
// timeout, a continuation request) an error after which the connection is unusable.
func (c *imapConn) command(line string, untagged func(*imapResponse)) (string, error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	tag := c.send(line)
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	return c.finish(tag, untagged, false)
}

// finish reads responses up to the tagged completion of tag. With wantCont, a continuation
// request ends the wait with ("+", nil) instead of being an error.
func (c *imapConn) finish(tag string, untagged func(*imapResponse), wantCont bool) (string, error) {
	for {
		resp, err := c.read()
		if err != nil {
			return "", err
		}
		t := resp.text
		switch {
		case len(t) >= 2 && t[0] == '*' && t[1] == ' ':
			if bytes.HasPrefix(t, []byte("* CAPABILITY ")) {
				c.noteCaps(t)
			}
			if untagged != nil {
				untagged(resp)
			}
		case len(t) >= 1 && t[0] == '+':
			if wantCont {
				return "+", nil
			}
			return "", fmt.Errorf("unexpected continuation request %q", t)
		case len(t) > len(tag) && string(t[:len(tag)]) == tag && t[len(tag)] == ' ':
			rest := string(t[len(tag)+1:])
			status, text, _ := strings.Cut(rest, " ")
			switch strings.ToUpper(status) {
			case "OK":
				if strings.HasPrefix(text, "[CAPABILITY ") {
					c.noteCaps(resp.text)
				}
				return text, nil
			case "NO", "BAD":
				return "", &imapError{Status: strings.ToUpper(status), Text: text}
			}
			return "", fmt.Errorf("bad tagged response %q", t)
		default:
			return "", fmt.Errorf("response with an unknown tag: %q", t)
		}
	}
}

// appendMessage runs APPEND of msg to mailbox with the given flags (e.g. `\Seen`), sending
// the message as a LITERAL+ non-synchronizing literal (RFC 7888) when the server offers it,
// else as a synchronizing literal after the server's continuation request. It returns the
// tagged OK's text, which carries APPENDUID with UIDPLUS (RFC 4315).
func (c *imapConn) appendMessage(mailbox, flags string, msg []byte) (string, error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	plus := ""
	if c.hasCap("LITERAL+") {
		plus = "+"
	}
	tag := c.send("APPEND " + quote(mailbox) + " (" + flags + ") {" + strconv.Itoa(len(msg)) + plus + "}")
	if plus == "" {
		if err := c.w.Flush(); err != nil {
			return "", err
		}
		if _, err := c.finish(tag, nil, true); err != nil {
			return "", err // including a tagged NO that refuses the literal
		}
	}
	c.w.Write(msg)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	return c.finish(tag, nil, false)
}

// idle sends IDLE (RFC 2177) and waits for the continuation request; the connection is then
// idling until done.
func (c *imapConn) idle() (tag string, err error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	tag = c.send("IDLE")
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	_, err = c.finish(tag, nil, true)
	return tag, err
}

// done ends the IDLE started with tag and reads its completion; responses that arrived
// meanwhile are skipped.
func (c *imapConn) done(tag string) error {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	c.w.WriteString("DONE\r\n")
	if err := c.w.Flush(); err != nil {
		return err
	}
	_, err := c.finish(tag, nil, false)
	return err
}

// logout says LOGOUT, reads the answer and closes.
func (c *imapConn) logout() error {
	defer c.close()
	_, err := c.command("LOGOUT", nil)
	return err
}

// login runs LOGIN with both arguments as quoted strings.
func (c *imapConn) login(user, password string) error {
	_, err := c.command("LOGIN "+quote(user)+" "+quote(password), nil)
	return err
}

// quote returns s as an IMAP quoted string (RFC 9051 §4.3).
func quote(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// untaggedNumber parses "* N NAME…" (EXISTS, EXPUNGE, FETCH) and returns N when the
// response is of that kind; name is upper-case.
func untaggedNumber(text []byte, name string) (int, bool) {
	if len(text) < 4 || text[0] != '*' || text[1] != ' ' {
		return 0, false
	}
	i, n := 2, 0
	for ; i < len(text) && text[i] >= '0' && text[i] <= '9'; i++ {
		n = n*10 + int(text[i]-'0')
		if n > 1<<31 {
			return 0, false
		}
	}
	if i == 2 || i >= len(text) || text[i] != ' ' {
		return 0, false
	}
	rest := text[i+1:]
	if len(rest) < len(name) || !bytes.EqualFold(rest[:len(name)], []byte(name)) {
		return 0, false
	}
	if len(rest) > len(name) && rest[len(name)] != ' ' {
		return 0, false
	}
	return n, true
}

// respCode returns the arguments of the response code [NAME args] in text, e.g. "7 42" for
// [APPENDUID 7 42] or [UIDVALIDITY 42].
func respCode(text, name string) (string, bool) {
	i := strings.Index(text, "["+name+" ")
	if i < 0 {
		return "", false
	}
	rest := text[i+len(name)+2:]
	j := strings.IndexByte(rest, ']')
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}
