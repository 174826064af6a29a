package imap

// COMPRESS=DEFLATE (RFC 4978) over TCP: the RFC's exchange, a compressed
// session that idles and receives pushes, and compression inside TLS.

import (
	"bufio"
	"compress/flate"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"loft/internal/certs"
)

// deflateConn is the client's side of a COMPRESS session: what it writes
// is deflated and flushed at once, what it reads is inflated.
type deflateConn struct {
	net.Conn
	zr io.Reader
	zw *flate.Writer
}

func (d *deflateConn) Read(p []byte) (int, error) { return d.zr.Read(p) }

func (d *deflateConn) Write(p []byte) (int, error) {
	n, err := d.zw.Write(p)
	if err == nil {
		err = d.zw.Flush()
	}
	return n, err
}

// compress sends COMPRESS DEFLATE and switches the client to deflate.
func (c *client) compress(tag string) {
	c.t.Helper()
	c.cmd(tag+" COMPRESS DEFLATE", tag+" OK DEFLATE active")
	// Whatever c.r holds beyond the OK is already deflated data.
	zw, _ := flate.NewWriter(c.conn, flate.BestSpeed)
	dc := &deflateConn{Conn: c.conn, zr: flate.NewReader(c.r), zw: zw}
	c.conn, c.r = dc, bufio.NewReader(dc)
}

func TestCompressDeflate(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(3)
	c := ts.dial()
	c.cmd("a COMPRESS DEFLATE", "a BAD COMPRESS is not allowed in the not authenticated state")
	c.cmd(`b LOGIN `+testUser+` "`+testPass+`"`, `re:^b OK \[CAPABILITY .* COMPRESS=DEFLATE .*\] Logged in$`)
	c.cmd("c COMPRESS BOGUS", "c BAD Unknown compression mechanism BOGUS")
	c.compress("d") // RFC 4978 §3: "a OK DEFLATE active"
	c.cmd("e COMPRESS DEFLATE", "e NO [COMPRESSIONACTIVE] DEFLATE is already active")
	selectInbox(c, 3)
	body := strings.Repeat("All work and no play makes Jack a dull boy.\r\n", 2000)
	c.send("f APPEND INBOX {" + itoa(len(body)) + "}")
	c.expect("+ Ready for literal data")
	c.sendRaw(body + "\r\n")
	c.expect(`re:^\* 4 EXISTS$`, `* 4 RECENT`, `re:^f OK \[APPENDUID \d+ 4\] APPEND completed$`)
	c.cmd("g FETCH 4 BODY.PEEK[]", "* 4 FETCH (BODY[] {"+itoa(len(body))+"}\r\n"+body+")", "g OK FETCH completed")
	c.cmd("h LOGOUT", "* BYE Logging out", "h OK LOGOUT completed")
}

// A compressed session receives IDLE pushes as they happen: each burst
// is flushed through the deflate stream.
func TestCompressSurvivesIdleWithPushes(t *testing.T) {
	ts := newTestServer(t)
	ts.deliverN(2)
	c := ts.login(false)
	c.compress("z")
	selectInbox(c, 2)
	o := ts.login(false)
	selectInbox(o, 2)
	for round := range 3 {
		c.cmd("i IDLE", "+ idling")
		ts.deliver(sampleMsg)
		// c, in IDLE, is told first: the new message is recent in c alone
		// (as are the two c selected first).
		c.expectWithin(2*time.Second, "* "+itoa(3+round)+" EXISTS", "* "+itoa(3+round)+" RECENT")
		o.cmd("n NOOP", "* "+itoa(3+round)+" EXISTS", "* 0 RECENT", "n OK NOOP completed")
		o.cmd(`s STORE 1 FLAGS (\Flagged $R`+itoa(round)+`)`, `* 1 FETCH (FLAGS (\Flagged $R`+itoa(round)+`))`, "s OK STORE completed")
		c.expectWithin(2*time.Second, `* 1 FETCH (UID 1 FLAGS (\Flagged $R`+itoa(round)+` \Recent))`)
		// (No expectNothing here: a timed-out read breaks the client's
		// inflater for good. The next line being the tagged OK shows
		// nothing else came.)
		c.cmd("DONE", "i OK IDLE completed")
	}
	c.cmd("f UID FETCH 5 (UID)", "* 5 FETCH (UID 5)", "f OK FETCH completed")
}

// Compression goes inside TLS: STARTTLS first, then COMPRESS.
func TestCompressInsideTLS(t *testing.T) {
	cfg, err := certs.Config("", "", t.TempDir(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(o *Options) { o.TLS = cfg; o.Plaintext = "never" })
	ts.deliverN(1)
	c := ts.dial()
	c.cmd("a STARTTLS", "a OK Begin TLS negotiation now")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.cmd(`b LOGIN `+testUser+` "`+testPass+`"`, `re:^b OK \[CAPABILITY .*\] Logged in$`)
	c.compress("c")
	selectInbox(c, 1)
	c.cmd("i IDLE", "+ idling")
	ts.deliver(sampleMsg)
	c.expectWithin(2*time.Second, "* 2 EXISTS", "* 2 RECENT")
	c.cmd("DONE", "i OK IDLE completed")
	c.cmd("d FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
		"* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: Hello\r\n\r\n)", "d OK FETCH completed")
}
