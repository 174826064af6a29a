package imap

import "testing"

// TestFetchPreview checks FETCH PREVIEW (RFC 8970): made at delivery from
// the first text part, quoted lines and markup left out; LAZY answers the
// same as it is stored; a message without text has an empty preview.
func TestFetchPreview(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	ts.deliver("Subject: html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p{}</style></head><body><p>Gr&uuml;&szlig;e,</p>\r\n<p>&gt; not a quote</p></body></html>\r\n")
	ts.deliver("Subject: image\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n")
	c := ts.login(true)
	selectInbox(c, 3)
	c.cmd("a FETCH 1:3 (PREVIEW)",
		`* 1 FETCH (PREVIEW "Hi Alice, how are you?")`,
		`* 2 FETCH (PREVIEW "Grüße, > not a quote")`,
		`* 3 FETCH (PREVIEW "")`,
		"a OK FETCH completed")
	c.cmd("b UID FETCH 1 (PREVIEW (LAZY) FLAGS)", `* 1 FETCH (UID 1 PREVIEW "Hi Alice, how are you?" FLAGS ())`, "b OK FETCH completed")
	c.cmd("c FETCH 1 (PREVIEW (FAST))", "c BAD Unknown preview modifier FAST")
}
