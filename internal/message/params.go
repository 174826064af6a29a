// This file parses the parameters of Content-Type and Content-Disposition
// (RFC 2045 §5.1, RFC 2183 §2), with RFC 2231 continuations and charsets.
// Go's mime.ParseMediaType does that too, but returns a map, losing the
// header order that BODYSTRUCTURE shows, and rejects what real mail contains
// (duplicates, stray characters, unknown charsets); this parser never fails.

package message

import (
	"bytes"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-message/charset"
)

// maxParams bounds the parameters kept per field; a hostile header could
// otherwise have a great many.
const maxParams = 100

// rawParam is one parameter as written: key lower-case, value unquoted.
type rawParam struct{ key, value string }

// parseParams parses "; key=value; key=\"quoted value\"" leniently: a
// parameter without "=" is skipped, an unquoted value runs to the next ";",
// an unterminated quoted string to the end. The first of duplicate keys wins.
func parseParams(s string) []Param {
	var raw []rawParam
	extended := false
	for len(raw) < maxParams {
		s = strings.TrimLeft(s, " \t;")
		if s == "" {
			break
		}
		// Look for "=" only up to the next ";", so that a run of items
		// without one costs linear time.
		semi := strings.IndexByte(s, ';')
		item := s
		if semi >= 0 {
			item = s[:semi]
		}
		eq := strings.IndexByte(item, '=')
		if eq < 0 {
			// No "=" in this item: skip it.
			if semi < 0 {
				break
			}
			s = s[semi+1:]
			continue
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		var value string
		value, s = paramValue1(strings.TrimLeft(s[eq+1:], " \t"))
		if key == "" {
			continue
		}
		if strings.IndexByte(key, '*') >= 0 {
			extended = true
		}
		raw = append(raw, rawParam{key, validUTF8(value)})
	}
	if len(raw) == 0 {
		return nil
	}
	if !extended {
		return dedupParams(raw)
	}
	return decode2231(raw)
}

// paramValue1 reads one parameter value from the start of s and returns it
// and what follows it.
func paramValue1(s string) (value, rest string) {
	if !strings.HasPrefix(s, `"`) {
		v, rest, _ := strings.Cut(s, ";")
		return strings.TrimSpace(v), rest
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			// Skip what follows the closing quote up to the next ";".
			_, rest, _ := strings.Cut(s[i+1:], ";")
			return b.String(), rest
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// dedupParams returns raw as Params, keeping the first of duplicate keys.
func dedupParams(raw []rawParam) []Param {
	out := make([]Param, 0, len(raw))
next:
	for _, r := range raw {
		for _, p := range out {
			if p.Key == r.key {
				continue next
			}
		}
		out = append(out, Param{r.key, r.value})
	}
	return out
}

// segment is one piece of an RFC 2231 parameter: "name*" (section -1,
// encoded), or "name*N" / "name*N*" (section N).
type segment struct {
	section int
	encoded bool
	value   string
}

// decode2231 merges RFC 2231 continuations and decodes extended values
// (RFC 2231 §3, §4). A parameter keeps the place of its first piece; an
// extended form wins over a plain one of the same name.
func decode2231(raw []rawParam) []Param {
	type param struct {
		name  string
		plain string
		has   bool // a plain value was seen
		segs  []segment
	}
	var params []*param
	byName := map[string]*param{}
	for _, r := range raw {
		name, seg, isExt := splitExtendedKey(r.key)
		p := byName[name]
		if p == nil {
			p = &param{name: name}
			byName[name] = p
			params = append(params, p)
		}
		seg.value = r.value
		switch {
		case isExt:
			p.segs = append(p.segs, seg)
		case !p.has:
			p.plain, p.has = r.value, true
		}
	}
	out := make([]Param, 0, len(params))
	for _, p := range params {
		v := p.plain
		if len(p.segs) > 0 {
			v = joinSegments(p.segs)
		}
		out = append(out, Param{p.name, v})
	}
	return out
}

// splitExtendedKey splits "name*", "name*N" or "name*N*"; anything else is a
// plain key.
func splitExtendedKey(key string) (name string, seg segment, ok bool) {
	name, rest, found := strings.Cut(key, "*")
	if !found || name == "" {
		return key, segment{}, false
	}
	if rest == "" {
		return name, segment{section: -1, encoded: true}, true
	}
	encoded := strings.HasSuffix(rest, "*")
	rest = strings.TrimSuffix(rest, "*")
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || len(rest) > 4 {
		return key, segment{}, false
	}
	return name, segment{section: n, encoded: encoded}, true
}

// joinSegments decodes an RFC 2231 value from its pieces: sections in order,
// percent-encoded ones decoded, the whole converted from the charset named
// at the start of the first encoded piece. An undecodable value is kept as
// its bytes.
func joinSegments(segs []segment) string {
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].section < segs[j].section })
	var b []byte
	cs := ""
	for i, s := range segs {
		if i > 0 && s.section == segs[i-1].section {
			continue // a duplicate section
		}
		v := s.value
		if !s.encoded {
			b = append(b, v...)
			continue
		}
		if i == 0 {
			// charset'language'value (RFC 2231 §4)
			if c, rest, ok := strings.Cut(v, "'"); ok {
				if _, rest, ok := strings.Cut(rest, "'"); ok {
					cs, v = c, rest
				}
			}
		}
		b = appendPercentDecoded(b, v)
	}
	return decodeCharset(cs, b)
}

// appendPercentDecoded appends v with %XX escapes decoded; a malformed
// escape stays as written.
func appendPercentDecoded(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
			b = append(b, unhex(v[i+1])<<4|unhex(v[i+2]))
			i += 2
			continue
		}
		b = append(b, v[i])
	}
	return b
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// decodeCharset converts b from the named charset to UTF-8. An unknown
// charset, or bytes that do not decode, leave b as it is (made valid UTF-8).
func decodeCharset(cs string, b []byte) string {
	switch strings.ToLower(cs) {
	case "", "us-ascii", "utf-8", "utf8":
		return validUTF8(string(b))
	}
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		return validUTF8(string(b))
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return validUTF8(string(b))
	}
	return validUTF8(string(out))
}

// paramValue returns the value of the parameter key, or "".
func paramValue(params []Param, key string) string {
	for _, p := range params {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}
