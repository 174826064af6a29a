package message

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// An attached message's header is body text of the message that carries
// it: SEARCH TEXT "postmortem" finds a forward of "Server outage
// postmortem", as Dovecot does (found on the standard set: four forwards).
func TestExtractTextHasAttachedMessageHeader(t *testing.T) {
	msg := strings.ReplaceAll(`From: a@example.org
Subject: Fwd
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

See below.
--b
Content-Type: message/rfc822

From: =?utf-8?q?Z=C3=B6e?= <zoe@example.org>
Subject: Server outage
 postmortem

The text of the attached message.
--b--
`, "\n", "\r\n")
	m, err := Parse(bytes.NewReader([]byte(msg)), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	text, err := ExtractText(bytes.NewReader([]byte(msg)), m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"see below.", "subject: server outage postmortem", "from: zöe <zoe@example.org>", "the text of the attached message."} {
		if !strings.Contains(text.Body, want) {
			t.Errorf("body text lacks %q:\n%s", want, text.Body)
		}
	}
	if strings.Contains(text.Header, "postmortem") {
		t.Errorf("the attached message's header went into the top-level header: %q", text.Header)
	}
}

// previewCases are messages whose preview comes from different parts.
var previewCases = map[string]string{
	"plain":     "Subject: a\r\nMessage-ID: <1@x>\r\nReferences: <0@x>\r\n\r\nHello there,\r\n> quoted\r\nworld\r\n",
	"html only": "Content-Type: text/html\r\n\r\n<p>Hello <b>bold</b> world</p>\r\n",
	"alternative": "Content-Type: multipart/alternative; boundary=B\r\nIn-Reply-To: <9@x>\r\n\r\n--B\r\n" +
		"Content-Type: text/plain\r\n\r\nplain text\r\n--B\r\nContent-Type: text/html\r\n\r\n<p>html text</p>\r\n--B--\r\n",
	"html before plain": "Content-Type: multipart/alternative; boundary=B\r\n\r\n--B\r\n" +
		"Content-Type: text/html\r\n\r\n<p>html first</p>\r\n--B\r\nContent-Type: text/plain\r\n\r\nplain second\r\n--B--\r\n",
	"empty plain, then plain": "Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" +
		"Content-Type: text/plain\r\n\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nthe second\r\n--B--\r\n",
	"empty plain, then html": "Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" +
		"Content-Type: text/plain\r\n\r\n\r\n--B\r\nContent-Type: text/html\r\n\r\n<i>from html</i>\r\n--B--\r\n",
	"attached plain": "Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" +
		"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nattached\r\n--B\r\n" +
		"Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>Caf=E9</p>\r\n--B--\r\n",
	"base64": "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"w6kgZXN0IMOgIGxhIHBsYWdlCg==\r\n",
	"forward": "Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n" +
		"Subject: inner\r\n\r\ninner text\r\n--B\r\nContent-Type: text/plain\r\n\r\nouter text\r\n--B--\r\n",
	"no text":   "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n",
	"long line": "Subject: long\r\n\r\n" + strings.Repeat("word ", 10000) + "\r\n",
}

// ExtractPreview gives the preview and ids ExtractText gives, without the
// text.
func TestExtractPreviewAgreesWithExtractText(t *testing.T) {
	check := func(name string, raw []byte) {
		t.Helper()
		m := ParseBytes(raw)
		full, err := ExtractText(bytes.NewReader(raw), m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ExtractPreview(bytes.NewReader(raw), m)
		if err != nil {
			t.Fatal(err)
		}
		if got.Preview != full.Preview || got.MessageID != full.MessageID || !slices.Equal(got.References, full.References) {
			t.Errorf("%s: ExtractPreview %+v\nExtractText preview %q, ids %q %q", name, got, full.Preview, full.MessageID, full.References)
		}
		if got.Header != "" || got.Body != "" {
			t.Errorf("%s: ExtractPreview has text", name)
		}
	}
	for name, raw := range previewCases {
		check(name, []byte(raw))
	}
	if path := os.Getenv("LOFT_MBOX"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, raw := range splitMbox(data) {
			check("mbox message "+strconv.Itoa(i), raw)
		}
	}
}
