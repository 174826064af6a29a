package message

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// wantPart is one expected part, in pre-order; path "" is the root.
type wantPart struct {
	path      string
	typ       string // "type/subtype"
	h, b, e   int
	lines     int64
	numParts  int
	paramsStr string // "k=v;k=v", checked when not ""
}

// at returns the offset of sub in s, after returns the offset just past it;
// both fail the test if sub is absent.
func at(t *testing.T, s, sub string) int {
	t.Helper()
	i := strings.Index(s, sub)
	if i < 0 {
		t.Fatalf("test bug: %q not in message", sub)
	}
	return i
}

func after(t *testing.T, s, sub string) int { t.Helper(); return at(t, s, sub) + len(sub) }

// crlf turns the LFs of a readable test message into CRLFs.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

type parseCase struct {
	name  string
	msg   string
	parts func(t *testing.T, m string) []wantPart
	check func(t *testing.T, m *Message)
}

func parseCases() []parseCase {
	return []parseCase{
		{
			name: "simple text",
			msg: crlf("From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: Hi there\n" +
				"Date: Mon, 1 Jan 2024 10:00:00 +0000\nMessage-ID: <1@example.com>\n\nHello\nWorld\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{path: "", typ: "text/plain", h: 0, b: after(t, m, "com>\r\n\r\n"), e: len(m), lines: 2}}
			},
			check: func(t *testing.T, m *Message) {
				want := Envelope{
					Date: "Mon, 1 Jan 2024 10:00:00 +0000", Subject: "Hi there",
					From:      []Address{{"Alice", "alice", "example.com"}},
					Sender:    []Address{{"Alice", "alice", "example.com"}},
					ReplyTo:   []Address{{"Alice", "alice", "example.com"}},
					To:        []Address{{"", "bob", "example.org"}},
					MessageID: "<1@example.com>",
				}
				if !reflect.DeepEqual(m.Envelope, want) {
					t.Errorf("envelope = %+v, want %+v", m.Envelope, want)
				}
			},
		},
		{
			name: "no body",
			msg:  crlf("Subject: empty\n\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "text/plain", h: 0, b: len(m), e: len(m)}}
			},
		},
		{
			name: "header without blank line",
			msg:  crlf("Subject: x\nFrom: a@b.example\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "text/plain", h: 0, b: len(m), e: len(m)}}
			},
			check: func(t *testing.T, m *Message) {
				if m.Envelope.Subject != "x" || len(m.Envelope.From) != 1 {
					t.Errorf("envelope = %+v", m.Envelope)
				}
			},
		},
		{
			name: "header without final CRLF",
			msg:  "Subject: x",
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "text/plain", h: 0, b: len(m), e: len(m)}}
			},
		},
		{
			name: "body without final CRLF",
			msg:  "Subject: x\r\n\r\nline1\r\nline2",
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "text/plain", h: 0, b: 14, e: len(m), lines: 2}}
			},
		},
		{
			name: "empty message",
			msg:  "",
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "text/plain"}}
			},
		},
		{
			name: "mbox From line and garbage lines",
			msg:  crlf("From alice@example.com Mon Jan  1 10:00:00 2024\nthis is not a header\n : orphan continuation\nSubject: s\n folded\nBad Name: x\n\nbody\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "text/plain", h: 0, b: after(t, m, "x\r\n\r\n"), e: len(m), lines: 1}}
			},
			check: func(t *testing.T, m *Message) {
				if m.Envelope.Subject != "s folded" || m.Envelope.From != nil {
					t.Errorf("envelope = %+v", m.Envelope)
				}
			},
		},
		{
			name: "multipart/alternative",
			msg: crlf("From: a@example.com\nContent-Type: multipart/alternative; boundary=\"XX\"\n\n" +
				"preamble\n--XX\nContent-Type: text/plain; charset=us-ascii\n\nplain body\n" +
				"--XX \t\nContent-Type: text/html\n\n<p>html</p>\n\n--XX--\nepilogue\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{
					{path: "", typ: "multipart/alternative", h: 0, b: after(t, m, "\"XX\"\r\n\r\n"), e: len(m), lines: 12, numParts: 2, paramsStr: "boundary=XX"},
					{path: "1", typ: "text/plain", h: after(t, m, "--XX\r\n"), b: after(t, m, "us-ascii\r\n\r\n"), e: at(t, m, "\r\n--XX \t"), lines: 1, paramsStr: "charset=us-ascii"},
					{path: "2", typ: "text/html", h: after(t, m, "--XX \t\r\n"), b: after(t, m, "text/html\r\n\r\n"), e: at(t, m, "\r\n--XX--"), lines: 1},
				}
			},
		},
		{
			name: "multipart/mixed nested with RFC 2231 attachment",
			msg: crlf("Content-Type: multipart/mixed; boundary=outer\nSubject: nested\n\n" +
				"--outer\nContent-Type: multipart/alternative; boundary=inner\n\n" +
				"--inner\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\ntext\n" +
				"--inner\nContent-Type: text/html\n\n<b>html</b>\n--inner--\n" +
				"--outer\nContent-Type: application/pdf;\n name*=utf-8''r%C3%A9sum%C3%A9.pdf\n" +
				"Content-Disposition: attachment;\n filename*0*=utf-8''r%C3%A9; filename*1*=sum%C3%A9;\n filename*2=.pdf; size=1234\n" +
				"Content-Transfer-Encoding: BASE64\nContent-ID: <pdf@x>\nContent-Description: a CV\n" +
				"Content-Language: en, fr\nContent-Location: cv.pdf\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\n" +
				"JVBERi0xLjQK\nJVBERi0xLjQK\n--outer--\n"),
			parts: func(t *testing.T, m string) []wantPart {
				pdf := at(t, m, "--outer\r\nContent-Type: application/pdf")
				return []wantPart{
					{path: "", typ: "multipart/mixed", h: 0, b: after(t, m, "nested\r\n\r\n"), e: len(m), lines: 29, numParts: 2},
					{path: "1", typ: "multipart/alternative", h: after(t, m, "--outer\r\n"), b: after(t, m, "inner\r\n\r\n"), e: pdf - 2, lines: 10, numParts: 2},
					{path: "1.1", typ: "text/plain", h: after(t, m, "--inner\r\n"), b: after(t, m, "8bit\r\n\r\n"), e: after(t, m, "8bit\r\n\r\ntext"), lines: 1},
					{path: "1.2", typ: "text/html", h: after(t, m, "text\r\n--inner\r\n"), b: after(t, m, "text/html\r\n\r\n"), e: after(t, m, "<b>html</b>"), lines: 1},
					{path: "2", typ: "application/pdf", h: pdf + len("--outer\r\n"), b: after(t, m, "IQ==\r\n\r\n"), e: at(t, m, "\r\n--outer--"), lines: 2, paramsStr: "name=résumé.pdf"},
				}
			},
			check: func(t *testing.T, m *Message) {
				p := m.Parts[1]
				got := fmt.Sprintf("%s|%v|%s|%s|%s|%v|%s|%s", p.Encoding, p.DispositionParams, p.Disposition, p.ID, p.Description, p.Language, p.Location, p.MD5)
				want := "base64|[{filename résumé.pdf} {size 1234}]|attachment|<pdf@x>|a CV|[en fr]|cv.pdf|Q2hlY2sgSW50ZWdyaXR5IQ=="
				if got != want {
					t.Errorf("got  %s\nwant %s", got, want)
				}
				if m.Parts[0].Parts[0].Encoding != "8bit" {
					t.Errorf("encoding %q", m.Parts[0].Parts[0].Encoding)
				}
			},
		},
		{
			name: "message/rfc822 with envelope",
			msg: crlf("From: a@example.com\nSubject: Fwd: orig\nContent-Type: multipart/mixed; boundary=b\n\n" +
				"--b\nContent-Type: text/plain\n\nsee attached\n" +
				"--b\nContent-Type: message/rfc822\n\n" +
				"From: \"Carol, C.\" <carol@z.example>\nTo: d@y.example, e@y.example\nSubject: orig\nMessage-ID: <orig@z>\nIn-Reply-To: <prev@z>\n\n" +
				"original body\nline 2\n--b--\n"),
			parts: func(t *testing.T, m string) []wantPart {
				body := after(t, m, "message/rfc822\r\n\r\n")
				return []wantPart{
					{path: "", typ: "multipart/mixed", h: 0, b: after(t, m, "boundary=b\r\n\r\n"), e: len(m), lines: 16, numParts: 2},
					{path: "1", typ: "text/plain", h: after(t, m, "--b\r\n"), b: after(t, m, "text/plain\r\n\r\n"), e: after(t, m, "see attached"), lines: 1},
					{path: "2", typ: "message/rfc822", h: after(t, m, "attached\r\n--b\r\n"), b: body, e: after(t, m, "line 2"), lines: 8, numParts: 1},
					{path: "2.1", typ: "text/plain", h: body, b: after(t, m, "<prev@z>\r\n\r\n"), e: after(t, m, "line 2"), lines: 2},
				}
			},
			check: func(t *testing.T, m *Message) {
				env := m.Parts[1].Envelope
				carol := []Address{{"Carol, C.", "carol", "z.example"}}
				want := &Envelope{Subject: "orig", From: carol, Sender: carol, ReplyTo: carol,
					To:        []Address{{"", "d", "y.example"}, {"", "e", "y.example"}},
					InReplyTo: "<prev@z>", MessageID: "<orig@z>"}
				if !reflect.DeepEqual(env, want) {
					t.Errorf("embedded envelope = %+v, want %+v", env, want)
				}
				if m.Envelope.Subject != "Fwd: orig" {
					t.Errorf("outer subject %q", m.Envelope.Subject)
				}
			},
		},
		{
			name: "message/rfc822 base64 is opaque",
			msg:  crlf("Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoK\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "message/rfc822", b: after(t, m, "base64\r\n\r\n"), e: len(m), lines: 1}}
			},
			check: func(t *testing.T, m *Message) {
				if m.Part.Envelope == nil || !reflect.DeepEqual(*m.Part.Envelope, Envelope{}) {
					t.Errorf("opaque message/rfc822 envelope = %+v, want empty", m.Part.Envelope)
				}
			},
		},
		{
			name: "missing inner close delimiter",
			msg: crlf("Content-Type: multipart/mixed; boundary=outer\n\n" +
				"--outer\nContent-Type: multipart/alternative; boundary=inner\n\n" +
				"--inner\nContent-Type: text/plain\n\na\n" +
				"--outer\nContent-Type: text/plain\n\nb\n--outer--\n"),
			parts: func(t *testing.T, m string) []wantPart {
				second := at(t, m, "\r\n--outer\r\nContent-Type: text/plain")
				return []wantPart{
					{path: "", typ: "multipart/mixed", h: 0, b: after(t, m, "outer\r\n\r\n"), e: len(m), lines: 12, numParts: 2},
					{path: "1", typ: "multipart/alternative", h: after(t, m, "--outer\r\n"), b: after(t, m, "inner\r\n\r\n"), e: second, lines: 4, numParts: 1},
					{path: "1.1", typ: "text/plain", h: after(t, m, "--inner\r\n"), b: after(t, m, "plain\r\n\r\n"), e: second, lines: 1},
					{path: "2", typ: "text/plain", h: second + len("\r\n--outer\r\n"), b: after(t, m, "plain\r\n\r\nb") - 1, e: after(t, m, "\r\n\r\nb"), lines: 1},
				}
			},
		},
		{
			name: "missing close delimiter at end of input",
			msg:  crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nlast\nlines\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{
					{path: "", typ: "multipart/mixed", b: after(t, m, "=b\r\n\r\n"), e: len(m), lines: 5, numParts: 1},
					{path: "1", typ: "text/plain", h: after(t, m, "--b\r\n"), b: after(t, m, "plain\r\n\r\n"), e: len(m), lines: 2},
				}
			},
		},
		{
			name: "boundary-like lines inside a base64 body",
			msg: crlf("Content-Type: multipart/mixed; boundary=frontier\n\n" +
				"--frontier\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" +
				"ZnJvbnRpZXI=frontier\n--frontierX\n---frontier\n -- frontier\n--frontier--x\n" +
				"--frontier--\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{
					{path: "", typ: "multipart/mixed", b: after(t, m, "frontier\r\n\r\n"), e: len(m), lines: 10, numParts: 1},
					{path: "1", typ: "application/octet-stream", h: after(t, m, "--frontier\r\n"), b: after(t, m, "base64\r\n\r\n"), e: at(t, m, "\r\n--frontier--\r\n"), lines: 5},
				}
			},
		},
		{
			name: "bare LF",
			msg:  "Subject: lf\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\nthere\n--b--\n",
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{
					{path: "", typ: "multipart/mixed", b: after(t, m, "=b\n\n"), e: len(m), lines: 6, numParts: 1},
					{path: "1", typ: "text/plain", h: after(t, m, "--b\n"), b: after(t, m, "plain\n\n"), e: after(t, m, "there"), lines: 2},
				}
			},
			check: func(t *testing.T, m *Message) {
				if m.Envelope.Subject != "lf" {
					t.Errorf("subject %q", m.Envelope.Subject)
				}
			},
		},
		{
			name: "empty part bodies",
			msg:  crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n--b\n--b\nSubject: no blank\n--b--\n"),
			parts: func(t *testing.T, m string) []wantPart {
				p1 := after(t, m, "=b\r\n\r\n--b\r\n")
				p2 := after(t, m, "plain\r\n\r\n--b\r\n")
				p3 := p2 + len("--b\r\n")
				return []wantPart{
					{path: "", typ: "multipart/mixed", b: after(t, m, "=b\r\n\r\n"), e: len(m), lines: 7, numParts: 3},
					{path: "1", typ: "text/plain", h: p1, b: after(t, m, "plain\r\n\r\n"), e: after(t, m, "plain\r\n\r\n")},
					{path: "2", typ: "text/plain", h: p2, b: p2, e: p2},
					{path: "3", typ: "text/plain", h: p3, b: after(t, m, "no blank"), e: after(t, m, "no blank")},
				}
			},
		},
		{
			// The blank line ending the embedded header is also the CRLF
			// before the delimiter: the embedded message keeps it, and its
			// parent grows to hold it.
			name: "embedded message ending at the delimiter",
			msg:  crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: x\n\n--b--\n"),
			parts: func(t *testing.T, m string) []wantPart {
				inner := after(t, m, "rfc822\r\n\r\n")
				end := after(t, m, "Subject: x\r\n\r\n")
				return []wantPart{
					{path: "", typ: "multipart/mixed", b: after(t, m, "=b\r\n\r\n"), e: len(m), lines: 6, numParts: 1},
					{path: "1", typ: "message/rfc822", h: after(t, m, "=b\r\n\r\n--b\r\n"), b: inner, e: end, lines: 2, numParts: 1},
					{path: "1.1", typ: "text/plain", h: inner, b: end, e: end},
				}
			},
			check: func(t *testing.T, m *Message) {
				if env := m.Parts[0].Envelope; env == nil || env.Subject != "x" {
					t.Errorf("embedded envelope %+v", env)
				}
			},
		},
		{
			name: "multipart/digest defaults to message/rfc822",
			msg: crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody one\n" +
				"--d\nContent-Type: text/plain\n\nplain\n--d--\n"),
			parts: func(t *testing.T, m string) []wantPart {
				first := after(t, m, "--d\r\n\r\n")
				return []wantPart{
					{path: "", typ: "multipart/digest", b: after(t, m, "=d\r\n\r\n"), e: len(m), lines: 10, numParts: 2},
					{path: "1", typ: "message/rfc822", h: after(t, m, "=d\r\n\r\n--d\r\n"), b: first, e: after(t, m, "body one"), lines: 3, numParts: 1},
					{path: "1.1", typ: "text/plain", h: first, b: after(t, m, "one\r\n\r\n"), e: after(t, m, "body one"), lines: 1},
					{path: "2", typ: "text/plain", h: after(t, m, "one\r\n--d\r\n"), b: after(t, m, "plain\r\n\r\n"), e: after(t, m, "\r\n\r\nplain"), lines: 1},
				}
			},
		},
		{
			name: "encoded-word names",
			msg: crlf("From: =?utf-8?Q?J=C3=BCrgen_M=C3=BCller?= <j@example.de>\n" +
				"To: =?iso-8859-1?B?Wm/rIExlZuh2cmU=?= <zoe@example.fr>,\n =?koi8-r?B?6dfBziDwxdTSz9c=?= <ivan@example.ru>,\n" +
				" \"=?utf-8?B?5bGx55SwIOWkqumDjg==?=\" <taro@example.jp>, =?x-unknown?Q?raw?= <u@example.com>\n" +
				"Subject: =?utf-8?Q?caf=C3=A9?=\n\nbody\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "text/plain", b: after(t, m, "?=\r\n\r\n"), e: len(m), lines: 1}}
			},
			check: func(t *testing.T, m *Message) {
				want := []Address{{"Zoë Lefèvre", "zoe", "example.fr"}, {"Иван Петров", "ivan", "example.ru"},
					{"山田 太郎", "taro", "example.jp"}, {"=?x-unknown?Q?raw?=", "u", "example.com"}}
				if !reflect.DeepEqual(m.Envelope.To, want) {
					t.Errorf("To = %q, want %q", m.Envelope.To, want)
				}
				if got := m.Envelope.From; len(got) != 1 || got[0].Name != "Jürgen Müller" {
					t.Errorf("From = %q", got)
				}
				if m.Envelope.Subject != "=?utf-8?Q?caf=C3=A9?=" {
					t.Errorf("Subject decoded: %q", m.Envelope.Subject)
				}
			},
		},
		{
			name: "group addresses",
			msg: crlf("From: a@example.com\nTo: Friends: b@example.com, \"B C\" <c@example.com>;, d@example.com,\n" +
				" undisclosed-recipients:;\nCc: Open: e@example.com\nBcc:\n\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "text/plain", b: len(m), e: len(m)}}
			},
			check: func(t *testing.T, m *Message) {
				wantTo := []Address{{"", "Friends", ""}, {"", "b", "example.com"}, {"B C", "c", "example.com"}, {},
					{"", "d", "example.com"}, {"", "undisclosed-recipients", ""}, {}}
				if !reflect.DeepEqual(m.Envelope.To, wantTo) {
					t.Errorf("To = %q\nwant %q", m.Envelope.To, wantTo)
				}
				wantCc := []Address{{"", "Open", ""}, {"", "e", "example.com"}, {}}
				if !reflect.DeepEqual(m.Envelope.Cc, wantCc) {
					t.Errorf("Cc = %q", m.Envelope.Cc)
				}
				if m.Envelope.Bcc != nil {
					t.Errorf("Bcc = %q", m.Envelope.Bcc)
				}
			},
		},
		{
			name: "malformed addresses",
			msg: crlf("From: John Smith\nTo: <broken@example.com, bare@, @host.example, \"unterminated <u@example.com>\n" +
				"Cc: x@example.com (Comment Name), <@route,@r2:routed@example.com>, Weird <w@example.com> trailing, <>\n" +
				"Reply-To: <>\n\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "text/plain", b: len(m), e: len(m)}}
			},
			check: func(t *testing.T, m *Message) {
				e := m.Envelope
				if want := []Address{{"John Smith", missingMailbox, missingDomain}}; !reflect.DeepEqual(e.From, want) {
					t.Errorf("From = %q", e.From)
				}
				if want := []Address{{"", missingMailbox, missingDomain}}; !reflect.DeepEqual(e.ReplyTo, want) {
					t.Errorf("ReplyTo = %q, want %q", e.ReplyTo, want)
				}
				if !reflect.DeepEqual(e.Sender, e.From) {
					t.Errorf("Sender = %q, want From", e.Sender)
				}
				wantTo := []Address{{"", "broken", "example.com"}, {"", "bare", missingDomain}, {"", missingMailbox, "host.example"},
					{"unterminated", "u", "example.com"}}
				if !reflect.DeepEqual(e.To, wantTo) {
					t.Errorf("To = %q", e.To)
				}
				wantCc := []Address{{"Comment Name", "x", "example.com"}, {"", "routed", "example.com"}, {"Weird", "w", "example.com"}, {"", missingMailbox, missingDomain}}
				if !reflect.DeepEqual(e.Cc, wantCc) {
					t.Errorf("Cc = %q\nwant %q", e.Cc, wantCc)
				}
			},
		},
		{
			name: "malformed Content-Type",
			msg: crlf("Content-Type: multipart/mixed; boundary=top\n\n" +
				"--top\nContent-Type: text\n\na\n" +
				"--top\nContent-Type: ;;; charset=\"utf-8\n\nb\n" +
				"--top\nContent-Type: multipart/mixed\n\nc\n" +
				"--top\nContent-Type: multipart/alternative; boundary=never\n\nd\n" +
				"--top\nContent-type : IMAGE/PNG (a picture); name=\"a \\\"b\\\".png\"; junk; x=1; X=2\n\ne\n" +
				"--top\nContent-Type: multipart/mixed; boundary=\"\"\n\nf\n--top--\n"),
			parts: func(t *testing.T, m string) []wantPart {
				parts := []wantPart{{path: "", typ: "multipart/mixed", b: after(t, m, "=top\r\n\r\n"), e: len(m), lines: 25, numParts: 6}}
				for i, c := range []string{"a", "b", "c", "d", "e", "f"} {
					typ, params := "text/plain", ""
					switch c {
					case "b":
						params = "charset=utf-8"
					case "d":
						params = "boundary=never"
					case "e":
						typ, params = "image/png", `name=a "b".png;x=1`
					}
					body := after(t, m, "\r\n\r\n"+c+"\r\n") - 3
					parts = append(parts, wantPart{path: fmt.Sprint(i + 1), typ: typ, h: -1, b: body, e: body + 1, lines: 1, paramsStr: params})
				}
				return parts
			},
		},
		{
			name: "8-bit header bytes",
			msg: "Subject: caf\xe9 na\xc3\xafve\r\nFrom: J\xfcrgen <j@example.de>\r\nX-\xff: y\r\n" +
				"Content-Type: text/plain; name=\"\xe9t\xe9.txt\"\r\n\r\nbody \xff\r\n",
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{{typ: "text/plain", b: after(t, m, ".txt\"\r\n\r\n"), e: len(m), lines: 1, paramsStr: "name=été.txt"}}
			},
			check: func(t *testing.T, m *Message) {
				if m.Envelope.Subject != "café naïve" {
					t.Errorf("Subject = %q", m.Envelope.Subject)
				}
				if want := []Address{{"Jürgen", "j", "example.de"}}; !reflect.DeepEqual(m.Envelope.From, want) {
					t.Errorf("From = %q", m.Envelope.From)
				}
			},
		},
		{
			name: "5,000-character lines",
			msg: crlf("Subject: " + strings.Repeat("s", 5000) + "\n continued\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n" +
				strings.Repeat("x", 5000) + "\n" + strings.Repeat("-", 5000) + "\n--b--\n"),
			parts: func(t *testing.T, m string) []wantPart {
				return []wantPart{
					{path: "", typ: "multipart/mixed", b: after(t, m, "=b\r\n\r\n"), e: len(m), lines: 5, numParts: 1},
					{path: "1", typ: "text/plain", h: after(t, m, "=b\r\n\r\n--b\r\n"), b: after(t, m, "--b\r\n\r\n"), e: at(t, m, "\r\n--b--"), lines: 2},
				}
			},
			check: func(t *testing.T, m *Message) {
				if want := strings.Repeat("s", 5000) + " continued"; m.Envelope.Subject != want {
					t.Errorf("Subject has %d bytes, want %d", len(m.Envelope.Subject), len(want))
				}
			},
		},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			m := ParseBytes([]byte(tc.msg))
			checkInvariants(t, []byte(tc.msg), m)
			checkParts(t, m, tc.parts(t, tc.msg))
			if tc.check != nil {
				tc.check(t, m)
			}
			// Lines longer than the buffer must not change the result.
			small, err := parse(bytes.NewReader([]byte(tc.msg)), int64(len(tc.msg)), 64)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(small, m) {
				t.Errorf("with a 64-byte buffer:\n%s\nwant\n%s", dump(small), dump(m))
			}
		})
	}
}

// checkParts compares the tree, in pre-order, with want. An h of -1 is not
// checked.
func checkParts(t *testing.T, m *Message, want []wantPart) {
	t.Helper()
	var got []*Part
	var paths []string
	var walk func(p *Part, path string)
	walk = func(p *Part, path string) {
		got = append(got, p)
		paths = append(paths, path)
		for i, c := range p.Parts {
			walk(c, strings.TrimPrefix(path+"."+fmt.Sprint(i+1), "."))
		}
	}
	walk(&m.Part, "")
	if len(got) != len(want) {
		t.Fatalf("%d parts, want %d:\n%s", len(got), len(want), dump(m))
	}
	for i, w := range want {
		p := got[i]
		g := wantPart{path: paths[i], typ: p.MediaType + "/" + p.MediaSubtype, h: int(p.HeaderOffset), b: int(p.BodyOffset),
			e: int(p.EndOffset), lines: p.Lines, numParts: len(p.Parts), paramsStr: w.paramsStr}
		if w.h == -1 {
			g.h = -1
		}
		if w.paramsStr != "" {
			var kv []string
			for _, p := range p.Params {
				kv = append(kv, p.Key+"="+p.Value)
			}
			g.paramsStr = strings.Join(kv, ";")
		}
		if g != w {
			t.Errorf("part %q:\n got %+v\nwant %+v", w.path, g, w)
		}
	}
}

// checkInvariants checks what every parse must satisfy, whatever the input.
func checkInvariants(t testing.TB, msg []byte, m *Message) {
	t.Helper()
	if m.HeaderOffset != 0 || m.EndOffset != int64(len(msg)) {
		t.Fatalf("root spans [%d, %d), want [0, %d)", m.HeaderOffset, m.EndOffset, len(msg))
	}
	checkStrings(t, reflect.ValueOf(m))
	var check func(p *Part, lo, hi int64, depth int) int
	check = func(p *Part, lo, hi int64, depth int) int {
		n := 1
		if !(lo <= p.HeaderOffset && p.HeaderOffset <= p.BodyOffset && p.BodyOffset <= p.EndOffset && p.EndOffset <= hi) {
			t.Fatalf("part [%d %d %d) not ordered within [%d, %d)", p.HeaderOffset, p.BodyOffset, p.EndOffset, lo, hi)
		}
		if want := countLines(msg[p.BodyOffset:p.EndOffset]); p.Lines != want {
			t.Fatalf("part at %d: Lines %d, but its body has %d", p.HeaderOffset, p.Lines, want)
		}
		if p.MediaType == "" || p.MediaSubtype == "" || p.MediaType != strings.ToLower(p.MediaType) || p.MediaSubtype != strings.ToLower(p.MediaSubtype) {
			t.Fatalf("part at %d: type %q/%q", p.HeaderOffset, p.MediaType, p.MediaSubtype)
		}
		switch {
		case p.MediaType == "multipart":
			if len(p.Parts) == 0 {
				t.Fatalf("multipart at %d without parts", p.HeaderOffset)
			}
		case isMessage(p):
			if p.Envelope == nil || len(p.Parts) > 1 {
				t.Fatalf("message at %d: envelope %v, %d parts", p.HeaderOffset, p.Envelope, len(p.Parts))
			}
			if len(p.Parts) == 1 && p.Parts[0].HeaderOffset != p.BodyOffset {
				t.Fatalf("message at %d: embedded message at %d, body at %d", p.HeaderOffset, p.Parts[0].HeaderOffset, p.BodyOffset)
			}
		default:
			if len(p.Parts) != 0 || p.Envelope != nil {
				t.Fatalf("%s/%s at %d has parts or an envelope", p.MediaType, p.MediaSubtype, p.HeaderOffset)
			}
		}
		if depth > maxDepth {
			t.Fatalf("part at %d deeper than %d", p.HeaderOffset, maxDepth)
		}
		next := p.BodyOffset
		for _, c := range p.Parts {
			n += check(c, next, p.EndOffset, depth+1)
			next = c.EndOffset
		}
		return n
	}
	if n := check(&m.Part, 0, int64(len(msg)), 0); n > maxParts {
		t.Fatalf("%d parts", n)
	}
}

// checkStrings checks that every string in v is valid UTF-8.
func checkStrings(t testing.TB, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			checkStrings(t, v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			checkStrings(t, v.Field(i))
		}
	case reflect.Slice:
		for i := range v.Len() {
			checkStrings(t, v.Index(i))
		}
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			t.Fatalf("invalid UTF-8: %q", v.String())
		}
	}
}

// countLines counts lines the IMAP way: a final line without CRLF counts.
func countLines(b []byte) int64 {
	n := int64(bytes.Count(b, []byte("\n")))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

func dump(m *Message) string {
	b, _ := json.MarshalIndent(m, "", " ")
	return string(b)
}

func TestParseJSONRoundTrip(t *testing.T) {
	for _, tc := range parseCases() {
		m := ParseBytes([]byte(tc.msg))
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var back Message
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(&back, m) {
			t.Errorf("%s: round trip differs:\n%s\nwant\n%s", tc.name, dump(&back), dump(m))
		}
	}
}
