package imap

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Literals of every kind: synchronizing {n} waits for "+", LITERAL+ {n+}
// does not, and both carry any bytes, CRLF and quotes included.
func TestLiteralKinds(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	// Synchronizing: the server asks for the data.
	c.cmd("a LOGIN {17}", "+ Ready for literal data")
	c.send(testUser + " {11}")
	c.expect("+ Ready for literal data")
	c.send(testPass)
	c.expect(`re:^a OK \[CAPABILITY .*\] Logged in$`)
	// Non-synchronizing: no continuation request; the next command follows.
	c.send("b CREATE {7+}\r\nfoo\"bar")
	c.send("c STATUS {7+}\r\nfoo\"bar (MESSAGES)")
	c.expect("b OK CREATE completed", `* STATUS "foo\"bar" (MESSAGES 0)`, "c OK STATUS completed")
	// A literal may hold CRLF; it is never a command separator.
	c.send("d CREATE {10+}\r\nx\r\ne LOGOUT")
	c.expect("d BAD Control character in mailbox name")
	c.cmd("f NOOP", "f OK NOOP completed")
	// Zero-length literal.
	c.cmd("g CREATE {0}", "+ Ready for literal data")
	c.cmd("", "g NO [CANNOT] Empty mailbox name")
}

// An oversized literal is refused; a synchronizing one never gets "+", and
// the data of a non-synchronizing one is skipped as data, never executed.
func TestOversizedLiteralIsDataNotCommands(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.cmd("a CREATE {2000000}", "a BAD [TOOBIG] literal too large (limit 1048576 bytes)")
	c.cmd("b NOOP", "b OK NOOP completed")

	// The payload is made of commands: none of them may run.
	payload := strings.Repeat("x DELETE Sent\r\ny LOGOUT\r\n", 50000)
	c.sendRaw("c CREATE {" + itoa(len(payload)) + "+}\r\n" + payload + "\r\n")
	c.expect("c BAD [TOOBIG] literal too large (limit 1048576 bytes)")
	c.cmd("d STATUS Sent (MESSAGES)", `* STATUS "Sent" (MESSAGES 0)`, "d OK STATUS completed")

	// A refused APPEND literal (over APPENDLIMIT) likewise.
	ts2 := newTestServer(t, func(o *Options) { o.AppendLimit = 100 })
	c = ts2.login(false)
	c.cmd("e APPEND INBOX {101}", "e NO [TOOBIG] Message larger than APPENDLIMIT 100")
	body := strings.Repeat("f LOGOUT\r\n", 20)
	c.sendRaw("g APPEND INBOX {" + itoa(len(body)) + "+}\r\n" + body + "\r\n")
	c.expect("g NO [TOOBIG] Message larger than APPENDLIMIT 100")
	c.cmd("h NOOP", "h OK NOOP completed")
}

// A syntax error after a non-synchronizing literal still skips the rest of
// the command, including further literals.
func TestSyntaxErrorSkipsRemainingLiterals(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.sendRaw("a RENAME {3+}\r\nfoo {12+}\r\nb DELETE Sent garbage\r\n")
	c.expect(`re:^a (NO|BAD) .*`)
	c.cmd("c LIST \"\" Sent", `* LIST (\HasNoChildren \Sent) "/" "Sent"`, "c OK LIST completed")
}

func TestBadInputKeepsSessionGoing(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(false)
	c.cmd("a FROBNICATE", "a BAD Unknown command FROBNICATE")
	c.cmd("b UID FROB 1", "b BAD Unknown command UID FROB")
	c.cmd("c FETCH 1 FLAGS", "c BAD FETCH is not allowed in the authenticated state")
	c.cmd("d SELECT", "d BAD expected ' ', got end of line")
	c.cmd("e SELECT INBOX extra", `e BAD expected '(' at "extra"`)
	c.cmd("f STATUS INBOX (BOGUS)", "f BAD Unknown STATUS item BOGUS")
	c.cmd(`g SELECT "unterminated`, "g BAD unterminated quoted string")
	c.cmd("+tag NOOP", "* BAD Missing or invalid tag")
	c.cmd("h", "h BAD Missing command")
	c.send(strings.Repeat("x", DefaultMaxLineLength+10))
	c.expect("* BAD command line too long (limit 65536 bytes)")
	c.cmd("i NOOP", "i OK NOOP completed")
}

func TestParserUnits(t *testing.T) {
	newP := func(line string) *parser {
		p := &parser{r: bufio.NewReader(strings.NewReader(line + "\r\n")), cont: func(string) error { return nil }}
		if err := p.readLine(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := newP(`1:3,5,7:*`)
	set, err := p.seqSet()
	if err != nil || len(set.ranges) != 3 || set.ranges[2] != (numRange{7, 0}) {
		t.Errorf("seqSet: %+v %v", set, err)
	}
	p = newP(`"17-Jul-1996 02:44:25 -0700"`)
	d, err := p.dateTime()
	if err != nil || d.UTC().Format(time.RFC3339) != "1996-07-17T09:44:25Z" {
		t.Errorf("dateTime: %v %v", d, err)
	}
	p = newP(`" 7-Jul-1996 02:44:25 +0000"`)
	if _, err := p.dateTime(); err != nil {
		t.Errorf("space-padded day: %v", err)
	}
	p = newP(`(\Seen $Forwarded \Draft)`)
	flags, err := p.flagList()
	if err != nil || strings.Join(flags, " ") != `\Seen $Forwarded \Draft` {
		t.Errorf("flagList: %v %v", flags, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"Entwürfe", "Entw&APw-rfe"},
		{"a&b", "a&-b"},
		{"日本語", "&ZeVnLIqe-"},
		{"plain", "plain"},
	} {
		if got := encodeMUTF7(tc.in); got != tc.want {
			t.Errorf("encode %q = %q, want %q", tc.in, got, tc.want)
		}
		if got, err := decodeMUTF7(tc.want); got != tc.in || err != nil {
			t.Errorf("decode %q = %q, %v", tc.want, got, err)
		}
	}
	if _, err := decodeMUTF7("&Jjo"); err == nil {
		t.Error("unterminated mUTF-7 accepted")
	}
}

func FuzzParser(f *testing.F) {
	for _, s := range []string{"a LOGIN {5}\r\nhello\r\n", "a FETCH 1:* (BODY.PEEK[1.2.HEADER.FIELDS (From)]<0.10>)\r\n",
		`a SEARCH OR (FROM "x" TO y) NOT 1:3` + "\r\n", "a APPEND x {3+}\r\nabc\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p := &parser{r: bufio.NewReader(strings.NewReader(in)), cont: func(string) error { return nil }}
		for range 10 {
			if p.readLine() != nil {
				return
			}
			p.tag()
			p.take(' ')
			p.atom()
			p.take(' ')
			p.astring()
			p.take(' ')
			p.seqSet()
			p.flagList()
			p.discardCommand()
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
