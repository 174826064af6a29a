package pop3

import (
	"strings"
	"testing"
)

func TestPOP3MalformedCommandsGetErrAndSessionGoesOn(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.dial()
	for _, tc := range []struct{ cmd, want string }{
		{"", "-ERR Unknown command"},
		{"HELO there", "-ERR Unknown command"},
		{"APOP alice@example.org c4c9334bac560ecc979e58001b3e22fb", "-ERR Unknown command"},
		{"USER", "-ERR USER needs the login name (your full address)"},
		{"PASS secret", "-ERR Send USER first"},
		{"STAT", "-ERR STAT is not valid before login"},
		{"RETR 1", "-ERR RETR is not valid before login"},
		{"CAPA now", "-ERR Too many arguments"},
	} {
		c.cmd(tc.cmd).expect(tc.want)
	}
	c.login(a.Address)
	for _, tc := range []struct{ cmd, want string }{
		{"RETR", "-ERR Missing message number"},
		{"RETR x", "-ERR Invalid message number"},
		{"RETR -1", "-ERR Invalid message number"},
		{"RETR 1.5", "-ERR Invalid message number"},
		{"RETR 0", "-ERR No such message: there are 2 messages"},
		{"RETR 3", "-ERR No such message: there are 2 messages"},
		{"RETR 99999999999999999999", "-ERR Invalid message number"},
		{"RETR 1 2", "-ERR Too many arguments"},
		{"LIST 1 2", "-ERR Too many arguments"},
		{"UIDL x", "-ERR Invalid message number"},
		{"DELE", "-ERR Missing message number"},
		{"STAT 1", "-ERR Too many arguments"},
		{"NOOP x", "-ERR Too many arguments"},
		{"RSET x", "-ERR Too many arguments"},
		{"TOP", "-ERR TOP needs a message number and a number of lines"},
		{"TOP 1 2 3", "-ERR Too many arguments"},
		{"USER alice@example.org", "-ERR USER is not valid after login"},
		{"PASS x", "-ERR PASS is not valid after login"},
		{"AUTH PLAIN", "-ERR AUTH is not valid after login"},
		{"FROB", "-ERR Unknown command"},
		{"\x00\x01\xff", "-ERR Unknown command"},
	} {
		c.cmd(tc.cmd).expect(tc.want)
	}
	// Nothing was disturbed.
	c.cmd("stat").expect("+OK 2 113")
	c.cmd("QUIT").expect("+OK Loft POP3 server signing off (2 messages left)")
}

func TestPOP3OverlongLineGetsErr(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.login(a.Address)
	// RFC 2449 §4 allows 255 octets; Loft accepts up to maxCommandLine.
	c.cmd("NOOP" + strings.Repeat(" ", maxCommandLine-len("NOOP\r\n"))).expect("-ERR Too many arguments")
	c.cmd("NOOP" + strings.Repeat(" ", maxCommandLine)).expect("-ERR Command line too long (the limit is 512 octets)")
	c.cmd("LIST " + strings.Repeat("9", 5000)).expect("-ERR Command line too long (the limit is 512 octets)")
	c.cmd("STAT").expect("+OK 2 113")
	// A "line" that never ends is not POP3: the connection is closed.
	c.send(strings.Repeat("x", 2*maxDiscard))
	c.expectClosed()
}

func TestPOP3BareLFCommandsAccepted(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.login(a.Address)
	c.conn.Write([]byte("STAT\n"))
	c.expectLine("+OK 2 113")
}

func TestPOP3Pipelining(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.dial()
	// RFC 2449 §6.6: several commands at once, answered in order.
	c.send("USER " + a.Address + "\r\nPASS " + testPassword + "\r\nSTAT\r\nLIST 1\r\nRETR 1\r\nDELE 2\r\nBOGUS\r\nUIDL 2\r\nQUIT")
	c.expectLine("+OK Send your password")
	c.expectLine("+OK alice@example.org has 2 messages (113 octets)")
	c.expectLine("+OK 2 113")
	c.expectLine("+OK 1 51")
	(&response{c: c, cmd: "RETR 1", line: c.readLine()}).expectBody("+OK 51 octets",
		"From: alice@example.org", "Subject: first", "", "Hello.")
	c.expectLine("+OK Message 2 deleted")
	c.expectLine("-ERR Unknown command")
	c.expectLine("-ERR Message 2 is already deleted")
	c.expectLine("+OK Loft POP3 server signing off (1 messages left)")
	c.expectClosed()
}

func TestPOP3QuitBeforeLogin(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial()
	c.cmd("QUIT").expect("+OK Loft POP3 server signing off")
	c.expectClosed()
}
