// This file holds the string rules of SORT and THREAD (RFC 5256): the base
// subject (§2.1), the i;unicode-casemap collation they compare strings
// with (RFC 5051, required by RFC 5256 §7), and the normalized message ids
// the REFERENCES algorithm links messages by.

package message

import (
	"mime"
	"strings"
	"unicode"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/unicode/norm"
)

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// DecodeWords decodes the RFC 2047 encoded-words of an unstructured header
// value to UTF-8; a value that does not decode is returned as it is.
func DecodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// BaseSubject returns the base subject of a decoded subject (RFC 5256 §2.1
// steps 2–7; step 1, RFC 2047 decoding, is DecodeWords) and whether its
// extraction removed a reply or forward marker: a subj-refwd, a "(fwd)"
// trailer or a "[fwd: …]" wrapper, which makes the message a reply or
// forward for THREAD=REFERENCES.
func BaseSubject(subject string) (base string, reply bool) {
	// Step 1: tabs and continuations become spaces, runs of spaces one.
	s := strings.Join(strings.FieldsFunc(subject, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\n'
	}), " ")
	for {
		// Step 2: subj-trailer = "(fwd)" / WSP, repeatedly.
		for {
			if strings.HasSuffix(s, " ") {
				s = s[:len(s)-1]
			} else if n := len(s); n >= 5 && strings.EqualFold(s[n-5:], "(fwd)") {
				s = s[:n-5]
				reply = true
			} else {
				break
			}
		}
		// Steps 3–5: subj-leaders, and subj-blobs that leave a non-empty
		// subj-base, until neither is left.
		for {
			if n, refwd := leaderLen(s); n > 0 {
				s = s[n:]
				reply = reply || refwd
				continue
			}
			if n := blobLen(s); n > 0 && n < len(s) {
				s = s[n:]
				continue
			}
			break
		}
		// Step 6: "[fwd:" subject "]".
		if n := len(s); n >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[n-1] == ']' {
			s = s[5 : n-1]
			reply = true
			continue
		}
		return s, reply
	}
}

// leaderLen returns the length of the subj-leader at the start of s (0 if
// none) and whether it is a subj-refwd rather than a space:
//
//	subj-leader = (*subj-blob subj-refwd) / WSP
//	subj-refwd  = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
func leaderLen(s string) (int, bool) {
	if s != "" && s[0] == ' ' {
		return 1, false
	}
	i := 0
	for {
		n := blobLen(s[i:])
		if n == 0 {
			break
		}
		i += n
	}
	if n := refwdLen(s[i:]); n > 0 {
		return i + n, true
	}
	return 0, false
}

// refwdLen returns the length of the subj-refwd at the start of s, or 0.
func refwdLen(s string) int {
	var i int
	switch {
	case len(s) >= 2 && strings.EqualFold(s[:2], "re"):
		i = 2
	case len(s) >= 3 && strings.EqualFold(s[:3], "fwd"):
		i = 3
	case len(s) >= 2 && strings.EqualFold(s[:2], "fw"):
		i = 2
	default:
		return 0
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	i += blobLen(s[i:])
	if i < len(s) && s[i] == ':' {
		return i + 1
	}
	return 0
}

// blobLen returns the length of the subj-blob at the start of s, or 0:
//
//	subj-blob = "[" *BLOBCHAR "]" *WSP   ; BLOBCHAR: any but "[" and "]"
func blobLen(s string) int {
	if s == "" || s[0] != '[' {
		return 0
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return 0
	}
	i := end + 2
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// CollationKey returns s as a "titlecased canonicalized UTF-8" string of
// the i;unicode-casemap collation (RFC 5051 §2): every character replaced
// by its titlecase mapping, then by its decomposition, until neither
// applies. Two strings compare under the collation as their keys compare
// octet by octet; they are equal when their keys are.
func CollationKey(s string) string {
	s = validUTF8(s)
	for range 4 { // a decomposition can expose a new titlecase mapping, rarely twice
		t := norm.NFKD.String(strings.Map(unicode.ToTitle, s))
		if t == s {
			break
		}
		s = t
	}
	return s
}

// MsgIDs returns the valid message ids of a Message-ID, In-Reply-To or
// References value, normalized so that differently quoted spellings of
// one id are equal (RFC 5256 REFERENCES): "<" local "@" domain ">" with
// quoting, escapes, comments and white space removed. Comparisons of the
// result are case-sensitive, as RFC 5256 says.
func MsgIDs(v string) []string {
	var ids []string
	for {
		start := strings.IndexByte(v, '<')
		if start < 0 {
			return ids
		}
		end := strings.IndexByte(v[start:], '>')
		if end < 0 {
			return ids
		}
		if id := normalizeMsgID(v[start+1 : start+end]); id != "" {
			ids = append(ids, id)
		}
		v = v[start+end+1:]
	}
}

// normalizeMsgID returns "<id-left@id-right>" without quotes or white
// space, or "" if the text between the brackets is no msg-id.
func normalizeMsgID(s string) string {
	var b strings.Builder
	b.WriteByte('<')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case ' ', '\t', '\r', '\n':
		case '<':
			return ""
		default:
			b.WriteByte(c)
		}
	}
	id := b.String()
	at := strings.IndexByte(id, '@')
	if at <= 1 || at == len(id)-1 {
		return "" // no id-left or no id-right
	}
	return id + ">"
}
