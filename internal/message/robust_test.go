// Tests of what the parser must survive: garbage, limits, huge messages,
// read errors, a real mbox, and the fuzz target; and the benchmark.

package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseGarbage(t *testing.T) {
	pieces := []string{"\r\n", "\n", "\r", "--", "--b", "--b--", "--in", "Content-Type: multipart/mixed; boundary=b\r\n",
		"Content-Type: multipart/mixed; boundary=in\r\n", "Content-Type: message/rfc822\r\n", "\r\n\r\n",
		"From: ", "a@b", ":", ";", ",", "\"", "<", ">", "(", ")", " ", "\t", "=?utf-8?q?x?=", "\x00", "\xff", "x"}
	rnd := rand.New(rand.NewSource(1))
	for i := range 2000 {
		var b strings.Builder
		for range rnd.Intn(200) {
			if rnd.Intn(4) == 0 {
				b.WriteByte(byte(rnd.Intn(256)))
			} else {
				b.WriteString(pieces[rnd.Intn(len(pieces))])
			}
		}
		msg := []byte(b.String())
		m := ParseBytes(msg)
		checkInvariants(t, msg, m)
		if i%100 == 0 {
			small, _ := parse(bytes.NewReader(msg), int64(len(msg)), 16)
			checkInvariants(t, msg, small)
		}
	}
}

// TestParseHostileHeadersInLinearTime feeds headers built to make a careless
// parser quadratic; each is about 1 MB.
func TestParseHostileHeadersInLinearTime(t *testing.T) {
	const n = 1 << 20
	cases := map[string]string{
		"params without =":    "Content-Type: text/plain" + strings.Repeat(";a", n/2) + ";x=1\r\n\r\n",
		"quotes in params":    "Content-Type: text/plain; a=\"" + strings.Repeat("\\\"", n/2) + "\r\n\r\n",
		"2231 sections":       "Content-Type: text/plain" + strings.Repeat("; name*9*=%41", n/14) + "\r\n\r\n",
		"angle then commas":   "To: <" + strings.Repeat(" ", n/2) + strings.Repeat(",", n/2) + "\r\n\r\n",
		"route commas":        "To: <@" + strings.Repeat(",@a", n/3) + ":u@h>\r\n\r\n",
		"empty groups":        "To: " + strings.Repeat("g:;", n/3) + "\r\n\r\n",
		"open quotes":         "To: " + strings.Repeat("\"a, ", n/4) + "\r\n\r\n",
		"open comments":       "To: " + strings.Repeat("(a, ", n/4) + "\r\n\r\n",
		"many addresses":      "To: " + strings.Repeat("a@b, ", n/5) + "\r\n\r\n",
		"encoded words":       "From: " + strings.Repeat("=?utf-8?q?a?= ", n/14) + "<a@b>\r\n\r\n",
		"folded lines":        "Subject: x" + strings.Repeat("\r\n y", n/4) + "\r\n\r\n",
		"garbage header":      strings.Repeat("--b\r\n", n/5) + "\r\n",
		"boundary-like lines": "Content-Type: multipart/mixed; boundary=" + strings.Repeat("b", 70) + "\r\n\r\n" + strings.Repeat("--"+strings.Repeat("b", 69)+"\r\n", n/73),
	}
	for name, msg := range cases {
		start := time.Now()
		m := ParseBytes([]byte(msg))
		t.Logf("%s: %v", name, time.Since(start))
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: %v", name, d)
		}
		checkInvariants(t, []byte(msg), m)
	}
}

func TestParseLongLineWithoutCRLF(t *testing.T) {
	msg := []byte("Subject: long\r\n\r\n" + strings.Repeat("a", 1<<20))
	m, err := Parse(bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, msg, m)
	if m.Lines != 1 || m.BodyOffset != 17 {
		t.Errorf("lines %d, body at %d", m.Lines, m.BodyOffset)
	}
}

func TestParseLimits(t *testing.T) {
	// Nesting beyond maxDepth: the deepest multipart becomes opaque text.
	var b strings.Builder
	for i := range maxDepth + 20 {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("\r\nleaf\r\n")
	msg := []byte(b.String())
	checkInvariants(t, msg, ParseBytes(msg))

	// Embedded messages nested deeply.
	msg = []byte(strings.Repeat("Content-Type: message/rfc822\r\n\r\n", maxDepth+20) + "body\r\n")
	checkInvariants(t, msg, ParseBytes(msg))

	// More parts than maxParts.
	b.Reset()
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range maxParts + 10 {
		b.WriteString("--b\r\n\r\nx\r\n")
	}
	b.WriteString("--b--\r\n")
	msg = []byte(b.String())
	m := ParseBytes(msg)
	checkInvariants(t, msg, m)
	if len(m.Parts) != maxParts-1 {
		t.Errorf("%d parts, want %d", len(m.Parts), maxParts-1)
	}
}

// repeatReaderAt is a large message that is not in memory: head, then line
// n times, then tail.
type repeatReaderAt struct {
	head, line, tail []byte
	n                int64
}

func (r *repeatReaderAt) size() int64 {
	return int64(len(r.head)) + r.n*int64(len(r.line)) + int64(len(r.tail))
}

func (r *repeatReaderAt) ReadAt(p []byte, off int64) (int, error) {
	total := 0
	mid := int64(len(r.head)) + r.n*int64(len(r.line))
	for len(p) > 0 && off < r.size() {
		var k int
		switch {
		case off < int64(len(r.head)):
			k = copy(p, r.head[off:])
		case off < mid:
			k = copy(p, r.line[(off-int64(len(r.head)))%int64(len(r.line)):])
		default:
			k = copy(p, r.tail[off-mid:])
		}
		p, off, total = p[k:], off+int64(k), total+k
	}
	if len(p) > 0 {
		return total, io.EOF
	}
	return total, nil
}

func TestParseLargeMessageInConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 100 MB")
	}
	r := &repeatReaderAt{
		head: []byte(crlf("Subject: big\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee attached\n" +
			"--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n")),
		line: []byte(strings.Repeat("QUJD", 19) + "\r\n"),
		tail: []byte("--b--\r\n"),
		n:    100 << 20 / 78,
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := Parse(r, r.size())
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("parsing %d bytes allocated %d bytes", r.size(), alloc)
	}
	if len(m.Parts) != 2 || m.Parts[1].Lines != r.n || m.Parts[1].EndOffset != r.size()-int64(len(r.tail))-2 {
		t.Errorf("attachment: %+v", m.Parts[1])
	}
}

// errReaderAt fails after n bytes.
type errReaderAt struct {
	b []byte
	n int64
}

var errDisk = errors.New("disk on fire")

func (r errReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.n {
		return 0, errDisk
	}
	k := copy(p, r.b[off:min(r.n, int64(len(r.b)))])
	if off+int64(k) >= r.n {
		return k, errDisk
	}
	return k, nil
}

func TestParseReadError(t *testing.T) {
	msg := []byte(strings.Repeat("Subject: x\r\n", 20000))
	if _, err := Parse(errReaderAt{msg, 100000}, int64(len(msg))); !errors.Is(err, errDisk) {
		t.Errorf("err = %v, want %v", err, errDisk)
	}
	// A file shorter than the size given.
	if _, err := Parse(bytes.NewReader(msg[:1000]), int64(len(msg))); err == nil {
		t.Error("short file: no error")
	}
}

// TestParseMbox parses every message of the mbox named by LOFT_MBOX (e.g.
// made by /work/shared/bench/gen_mbox.py) and checks the invariants.
func TestParseMbox(t *testing.T) {
	path := os.Getenv("LOFT_MBOX")
	if path == "" {
		t.Skip("LOFT_MBOX not set")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	msgs := splitMbox(data)
	types := map[string]int{}
	var parts int
	start := time.Now()
	for i, raw := range msgs {
		m := ParseBytes(raw)
		checkInvariants(t, raw, m)
		var walk func(p *Part)
		walk = func(p *Part) {
			parts++
			types[p.MediaType+"/"+p.MediaSubtype]++
			for _, c := range p.Parts {
				walk(c)
			}
		}
		walk(&m.Part)
		if len(m.Envelope.From) == 0 || m.Envelope.Subject == "" {
			t.Errorf("message %d: envelope %+v", i, m.Envelope)
		}
		// A message whose header says multipart must parse as one.
		if bytes.Contains(raw[:m.BodyOffset], []byte("Content-Type: multipart/")) && m.MediaType != "multipart" {
			t.Errorf("message %d: multipart parsed as %s/%s", i, m.MediaType, m.MediaSubtype)
		}
	}
	t.Logf("%d messages, %d parts in %v; types %v", len(msgs), parts, time.Since(start), types)
}

// splitMbox splits an mbox on its "From " lines, converting LF to CRLF.
func splitMbox(data []byte) [][]byte {
	var msgs [][]byte
	for _, chunk := range bytes.Split(append([]byte("\n"), data...), []byte("\nFrom ")) {
		if len(chunk) == 0 {
			continue
		}
		_, msg, _ := bytes.Cut(chunk, []byte("\n")) // the rest of the "From " line
		msg = bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
		msgs = append(msgs, bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n")))
	}
	return msgs
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases() {
		f.Add([]byte(tc.msg))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		m := ParseBytes(msg)
		checkInvariants(t, msg, m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back Message
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, m) {
			t.Fatalf("JSON round trip differs (%v)", err)
		}
		// A buffer smaller than the message but longer than its lines must
		// not change the result.
		longest := 0
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			longest = max(longest, len(line)+1)
		}
		if bufSize := longest + 16; bufSize < len(msg) {
			small, err := parse(bytes.NewReader(msg), int64(len(msg)), bufSize)
			if err != nil || !reflect.DeepEqual(small, m) {
				t.Fatalf("buffer of %d bytes: differs (%v)", bufSize, err)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	msg := benchMessage()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		ParseBytes(msg)
	}
}

// benchMessage is a ~12 KB multipart/mixed message: text and HTML
// alternatives and a base64 attachment, with a realistic header.
func benchMessage() []byte {
	var b strings.Builder
	b.WriteString("Return-Path: <alice@example.com>\nReceived: from mx.example.com (mx.example.com [192.0.2.1])\n\tby mail.example.org with ESMTPS id 4F2A1B\n\tfor <bob@example.org>; Mon, 1 Jan 2024 10:00:00 +0000\n" +
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel;\n\th=from:to:subject:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\n\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBqdXN0IHNvbWUgYnl0ZXM=\n" +
		"From: =?utf-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>\nTo: Bob Jones <bob@example.org>, \"Ops Team\" <ops@example.net>\nCc: carol@example.com\n" +
		"Subject: =?utf-8?Q?Quarterly_report_=E2=80=93_draft?=\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nMessage-ID: <abc123@example.de>\nIn-Reply-To: <prev@example.org>\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"=_outer_4F2A1B\"\n\nThis is a multi-part message in MIME format.\n\n" +
		"--=_outer_4F2A1B\nContent-Type: multipart/alternative; boundary=\"=_alt_4F2A1B\"\n\n--=_alt_4F2A1B\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n")
	for range 40 {
		b.WriteString("Please find attached the quarterly report draft; comments welcome before Friday.\n")
	}
	b.WriteString("--=_alt_4F2A1B\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<html><body>\n")
	for range 40 {
		b.WriteString("<p>Please find attached the quarterly report draft; comments welcome.</p>\n")
	}
	b.WriteString("</body></html>\n--=_alt_4F2A1B--\n\n--=_outer_4F2A1B\nContent-Type: application/pdf; name=\"report.pdf\"\n" +
		"Content-Disposition: attachment; filename=\"report.pdf\"\nContent-Transfer-Encoding: base64\n\n")
	for range 60 {
		b.WriteString("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k\n")
	}
	b.WriteString("--=_outer_4F2A1B--\n")
	return []byte(crlf(b.String()))
}
