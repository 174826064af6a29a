package imap

import (
	"strings"
	"testing"
)

const multipartMsg = "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.net>\r\n" +
	"To: alice@example.org, Team: a@x.org, b@x.org;\r\n" +
	"Subject: Files\r\n" +
	"Date: Tue, 3 Jan 2023 10:00:00 +0100\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"XX\"\r\n" +
	"\r\n" +
	"preamble\r\n" +
	"--XX\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello\r\n" +
	"--XX\r\n" +
	"Content-Type: application/octet-stream; name=\"a.bin\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"Content-Disposition: attachment; filename=\"a.bin\"\r\n" +
	"\r\n" +
	"AAECAw==\r\n" +
	"--XX\r\n" +
	"Content-Type: message/rfc822\r\n" +
	"\r\n" +
	"Subject: inner\r\n" +
	"From: c@example.com\r\n" +
	"\r\n" +
	"inner body\r\n" +
	"--XX--\r\n"

func TestFetchBasics(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	c := ts.login(false)
	selectInbox(c, 1)
	size := itoa(len(sampleMsg))
	c.cmd("a FETCH 1 (FLAGS RFC822.SIZE UID)", "* 1 FETCH (FLAGS (\\Recent) RFC822.SIZE "+size+" UID 1)", "a OK FETCH completed")
	c.cmd("b FETCH 1 ENVELOPE",
		`* 1 FETCH (ENVELOPE ("Mon, 2 Jan 2023 15:04:05 +0000" "Hello" (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net")) ((NIL NIL "alice" "example.org")) NIL NIL NIL "<1@example.net>"))`,
		"b OK FETCH completed")
	c.cmd("c FETCH 1 BODYSTRUCTURE", `* 1 FETCH (BODYSTRUCTURE ("TEXT" "PLAIN" NIL NIL NIL "7BIT" 25 2 NIL NIL NIL NIL))`, "c OK FETCH completed")
	c.cmd("d FETCH 1 BODY", `* 1 FETCH (BODY ("TEXT" "PLAIN" NIL NIL NIL "7BIT" 25 2))`, "d OK FETCH completed")
	c.cmd("e FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject FROM)]",
		"* 1 FETCH (BODY[HEADER.FIELDS (Subject FROM)] {47}\r\nFrom: Bob <bob@example.net>\r\nSubject: Hello\r\n\r\n)", "e OK FETCH completed")
	c.cmd("f FETCH 1 BODY.PEEK[TEXT]<3.6>", "* 1 FETCH (BODY[TEXT]<3> {6}\r\nAlice,)", "f OK FETCH completed")
	c.cmd("g FETCH 1 FLAGS", "* 1 FETCH (FLAGS (\\Recent))", "g OK FETCH completed")
	// A non-PEEK body fetch sets \Seen and reports it.
	c.cmd("h FETCH 1 BODY[]", "* 1 FETCH (BODY[] {"+size+"}\r\n"+sampleMsg+` FLAGS (\Seen \Recent))`, "h OK FETCH completed")
	c.cmd("i FETCH 1 (FLAGS RFC822.HEADER)",
		"re:(?s)^\\* 1 FETCH \\(FLAGS \\(\\\\Seen \\\\Recent\\) RFC822.HEADER \\{\\d+\\}\r\nFrom: Bob.*\r\n\r\n\\)$", "i OK FETCH completed")
	c.cmd("j UID FETCH 1 INTERNALDATE", `re:^\* 1 FETCH \(UID 1 INTERNALDATE "[ 0-9]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [-+]\d{4}"\)$`, "j OK FETCH completed")
	c.cmd("k FETCH 1 FAST", `re:^\* 1 FETCH \(FLAGS \(\\Seen \\Recent\) INTERNALDATE ".*" RFC822.SIZE `+size+`\)$`, "k OK FETCH completed")
	c.cmd("l FETCH 2 FLAGS", "l BAD Invalid message sequence number (mailbox has 1 messages)")
	c.cmd("m UID FETCH 2:* FLAGS", "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))", "m OK FETCH completed") // "*" is the highest UID
	c.cmd("n UID FETCH 5 FLAGS", "n OK FETCH completed")
	c.cmd("o FETCH 1 (BODY[NOPE])", "o BAD Invalid section NOPE")
	c.cmd("p FETCH 1 RFC822.TEXT", "* 1 FETCH (RFC822.TEXT {25}\r\nHi Alice,\r\nhow are you?\r\n)", "p OK FETCH completed")
}

func TestFetchMultipartSections(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(multipartMsg)
	c := ts.login(false)
	selectInbox(c, 1)
	c.cmd("a FETCH 1 BODYSTRUCTURE",
		`* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)`+
			`("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") NIL NIL "BASE64" 8 NIL ("ATTACHMENT" ("FILENAME" "a.bin")) NIL NIL)`+
			`("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 49 (NIL "inner" ((NIL NIL "c" "example.com")) ((NIL NIL "c" "example.com")) ((NIL NIL "c" "example.com")) NIL NIL NIL NIL NIL) `+
			`("TEXT" "PLAIN" NIL NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 4 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "XX") NIL NIL NIL))`,
		"a OK FETCH completed")
	c.cmd("b FETCH 1 BODY.PEEK[1]", "* 1 FETCH (BODY[1] {5}\r\nHello)", "b OK FETCH completed")
	c.cmd("c FETCH 1 BODY.PEEK[2.MIME]",
		"* 1 FETCH (BODY[2.MIME] {142}\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\n)",
		"c OK FETCH completed")
	c.cmd("d FETCH 1 BINARY.PEEK[2]", "* 1 FETCH (BINARY[2] ~{4}\r\n\x00\x01\x02\x03)", "d OK FETCH completed")
	c.cmd("e FETCH 1 BINARY.SIZE[2]", "* 1 FETCH (BINARY.SIZE[2] 4)", "e OK FETCH completed")
	c.cmd("f FETCH 1 BODY.PEEK[3.HEADER]", "* 1 FETCH (BODY[3.HEADER] {39}\r\nSubject: inner\r\nFrom: c@example.com\r\n\r\n)", "f OK FETCH completed")
	c.cmd("g FETCH 1 BODY.PEEK[3.TEXT]", "* 1 FETCH (BODY[3.TEXT] {10}\r\ninner body)", "g OK FETCH completed")
	c.cmd("h FETCH 1 BODY.PEEK[3.1]", "* 1 FETCH (BODY[3.1] {10}\r\ninner body)", "h OK FETCH completed")
	c.cmd("i FETCH 1 BODY.PEEK[9]", "* 1 FETCH (BODY[9] NIL)", "i OK FETCH completed")
	c.cmd("j FETCH 1 BODY.PEEK[1.HEADER]", "* 1 FETCH (BODY[1.HEADER] NIL)", "j OK FETCH completed")
	env := c.run("k FETCH 1 ENVELOPE")
	if !strings.Contains(env[0], `(("=?utf-8?q?J=C3=B6rg?=" NIL "jorg" "example.net"))`) ||
		!strings.Contains(env[0], `((NIL NIL "alice" "example.org")(NIL NIL "Team" NIL)(NIL NIL "a" "x.org")(NIL NIL "b" "x.org")(NIL NIL NIL NIL))`) {
		t.Errorf("rev1 envelope: %q", env[0])
	}
	c2 := ts.login(true)
	selectInbox(c2, 1)
	env = c2.run("l FETCH 1 ENVELOPE")
	if !strings.Contains(env[0], `(("Jörg" NIL "jorg" "example.net"))`) {
		t.Errorf("rev2 envelope: %q", env[0])
	}
}

// Bodies stream from the file: a message far larger than any buffer is
// served whole and exact.
func TestFetchLargeBody(t *testing.T) {
	ts := newTestServer(t)
	line := strings.Repeat("0123456789", 99) + "\r\n"
	big := "Subject: big\r\n\r\n" + strings.Repeat(line, 5000)
	ts.deliver(big)
	c := ts.login(false)
	selectInbox(c, 1)
	res := c.run("a FETCH 1 BODY.PEEK[]")
	if want := "* 1 FETCH (BODY[] {" + itoa(len(big)) + "}\r\n" + big + ")"; res[0] != want {
		t.Fatalf("large body differs (got %d bytes)", len(res[0]))
	}
}
