package message

import (
	"bytes"
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
