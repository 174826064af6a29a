// This file builds the IMAP ENVELOPE of a message from its header and
// parses address lists (RFC 5322 §3.4) leniently: net/mail for what it
// accepts, a forgiving fallback for the rest, groups kept as RFC 9051 shows
// them.

package message

import (
	"mime"
	"net/mail"
	"slices"
	"strings"

	"github.com/emersion/go-message/charset"
)

// Envelope is the IMAP ENVELOPE of a message (RFC 9051 §7.5.2): header
// values as they appear (unfolded, not decoded), addresses parsed. An absent
// field is "" or nil. Raw 8-bit bytes that are not UTF-8 are read as
// ISO-8859-1, so that every string is valid UTF-8 and survives the JSON cache.
type Envelope struct {
	Date, Subject                      string
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	InReplyTo, MessageID               string
}

// Address is one address of an Envelope. Name is the display name decoded
// from RFC 2047 to UTF-8 (raw if undecodable); Mailbox and Host are the
// local part (unquoted) and the domain. A group is represented as RFC 9051
// does: an Address with Host == "" and Mailbox == the group name (Name ==
// ""), then its members, then an Address with Mailbox == "" and Host == ""
// ending the group. An address without a local part or domain gets Mailbox
// "MISSING_MAILBOX" or Host "MISSING_DOMAIN", as in Dovecot, so that it
// cannot be taken for a group marker.
type Address struct{ Name, Mailbox, Host string }

// The Mailbox and Host of an address written without one (Dovecot's words).
const (
	missingMailbox = "MISSING_MAILBOX"
	missingDomain  = "MISSING_DOMAIN"
)

// maxAddresses bounds the addresses kept per field.
const maxAddresses = 10000

// envelope returns the envelope of the message whose header h holds.
func (h *header) envelope() Envelope {
	e := Envelope{
		Date:      h.val[fDate],
		Subject:   h.val[fSubject],
		InReplyTo: h.val[fInReplyTo],
		MessageID: h.val[fMessageID],
	}
	var dec *mime.WordDecoder
	list := func(f int) []Address {
		if h.val[f] == "" {
			return nil
		}
		if dec == nil {
			dec = &mime.WordDecoder{CharsetReader: charset.Reader}
		}
		return parseAddressList(h.val[f], dec)
	}
	e.From = list(fFrom)
	e.Sender = list(fSender)
	e.ReplyTo = list(fReplyTo)
	e.To = list(fTo)
	e.Cc = list(fCc)
	e.Bcc = list(fBcc)
	// RFC 9051 §7.5.2: sender and reply-to default to from.
	if len(e.Sender) == 0 {
		e.Sender = slices.Clone(e.From)
	}
	if len(e.ReplyTo) == 0 {
		e.ReplyTo = slices.Clone(e.From)
	}
	return e
}

// parseAddressList parses an address list. It splits the list on commas
// outside quotes, comments and angle brackets, recognises groups
// ("name: members;"), and parses each mailbox on its own, so that one bad
// address does not lose the others.
func parseAddressList(v string, dec *mime.WordDecoder) []Address {
	l := addressList{dec: dec}
	// An unterminated quoted string or comment would swallow the rest of the
	// list: then that rest is split again with the construct disabled.
	rest := l.split(v, true, true)
	if rest >= 0 {
		if r := l.split(v[rest:], false, true); r >= 0 {
			l.split(v[rest:][r:], false, false)
		}
	}
	if l.inGroup {
		l.out = append(l.out, Address{})
	}
	return l.out
}

// addressList is the state of parseAddressList.
type addressList struct {
	dec     *mime.WordDecoder
	out     []Address
	inGroup bool
}

// mailbox adds the mailbox in item, if any.
func (l *addressList) mailbox(item string) {
	if len(l.out) >= maxAddresses {
		return
	}
	if a, ok := parseMailbox(item, l.dec); ok {
		l.out = append(l.out, a)
	}
}

// split adds the addresses of v. If v ends inside a quoted string or a
// comment, it returns the offset of the item where that started, not yet
// added; otherwise -1.
func (l *addressList) split(v string, quotes, comments bool) int {
	start := 0
	quote, escaped := false, false
	comment, angle := 0, 0
	route := false // the angle brackets hold an obs-route
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && (quote || comment > 0):
			escaped = true
		case quote:
			quote = c != '"'
		case comment > 0:
			switch c {
			case '(':
				comment++
			case ')':
				comment--
			}
		case c == '"' && quotes:
			quote = true
		case c == '(' && comments:
			comment++
		case angle > 0:
			switch {
			case c == '>':
				angle--
			case c == ',' && !route:
				// A comma in angle brackets belongs only to an obs-route
				// (RFC 5322 §4.4); otherwise the ">" is missing.
				angle = 0
				l.mailbox(v[start:i])
				start = i + 1
			}
		case c == '<':
			angle = 1
			rest := strings.TrimLeft(v[i+1:], " \t")
			route = strings.HasPrefix(rest, "@")
		case c == ',':
			l.mailbox(v[start:i])
			start = i + 1
		case c == ':' && !l.inGroup:
			// RFC 5322 §3.4: group = display-name ":" [group-list] ";"
			if name := unquotePhrase(v[start:i]); name != "" && len(l.out) < maxAddresses {
				l.out = append(l.out, Address{Mailbox: name})
				l.inGroup = true
			}
			start = i + 1
		case c == ';':
			l.mailbox(v[start:i])
			start = i + 1
			if l.inGroup {
				l.out = append(l.out, Address{})
				l.inGroup = false
			}
		}
	}
	if quote || comment > 0 {
		return start
	}
	l.mailbox(v[start:])
	return -1
}

// parseMailbox parses one mailbox: "addr@host", "Name <addr@host>",
// "addr@host (Name)". It reports false only when there is nothing
// address-like in item.
func parseMailbox(item string, dec *mime.WordDecoder) (Address, bool) {
	item = strings.TrimSpace(item)
	if item == "" {
		return Address{}, false
	}
	ap := mail.AddressParser{WordDecoder: dec}
	if a, err := ap.Parse(item); err == nil {
		local, host := splitAddrSpec(a.Address)
		return makeAddress(a.Name, local, host, dec)
	}
	return lenientMailbox(item, dec)
}

// lenientMailbox extracts what it can from a mailbox net/mail rejects, as
// Dovecot does: the text in angle brackets, else a word with an "@", else a
// lone word as a local part; the display name from the text before "<", the
// other words, or a comment.
func lenientMailbox(item string, dec *mime.WordDecoder) (Address, bool) {
	var name, addr string
	if i := strings.IndexByte(item, '<'); i >= 0 {
		name = item[:i]
		addr, _, _ = strings.Cut(item[i+1:], ">")
		if k := strings.LastIndexByte(addr, ':'); k >= 0 {
			addr = addr[k+1:] // obs-route "<@a,@b:user@host>"
		}
		if strings.TrimSpace(name) == "" && strings.TrimSpace(addr) == "" {
			// "<>", the null address.
			return Address{Mailbox: missingMailbox, Host: missingDomain}, true
		}
	} else {
		text, comment := stripComments(item)
		var words []string
		for _, w := range strings.Fields(text) {
			if addr == "" && strings.IndexByte(w, '@') >= 0 {
				addr = w
			} else {
				words = append(words, w)
			}
		}
		switch {
		case addr == "" && len(words) == 1 && !strings.Contains(words[0], `"`):
			addr, name = words[0], comment // "From: john": a local part
		case len(words) > 0:
			name = strings.Join(words, " ") // "From: John Smith": a name
		default:
			name = comment
		}
	}
	local, host := splitAddrSpec(strings.TrimSpace(addr))
	return makeAddress(unquotePhrase(name), unquotePhrase(local), host, dec)
}

// makeAddress builds an Address, decoding the name. A missing local part or
// domain is named as Dovecot names it, so that the address cannot be taken
// for a group marker. It reports false if there is nothing at all.
func makeAddress(name, local, host string, dec *mime.WordDecoder) (Address, bool) {
	if name == "" && local == "" && host == "" {
		return Address{}, false
	}
	if local == "" {
		local = missingMailbox
	}
	if host == "" {
		host = missingDomain
	}
	if strings.Contains(name, "=?") {
		// Encoded words net/mail left alone: in a quoted string (against
		// RFC 2047 §5, but common) or in text it could not parse.
		if d, err := dec.DecodeHeader(name); err == nil {
			name = d
		}
	}
	return Address{Name: validUTF8(name), Mailbox: validUTF8(local), Host: validUTF8(host)}, true
}

// splitAddrSpec splits "local@host" at its last "@" (a quoted local part may
// hold one).
func splitAddrSpec(s string) (local, host string) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i+1:])
}

// stripComments returns s without its (nested) comments, and the text of
// the first comment.
func stripComments(s string) (text, first string) {
	var b, c strings.Builder
	depth, n := 0, 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '(':
			if depth == 0 {
				n++
			} else if n == 1 {
				c.WriteByte(ch)
			}
			depth++
		case ch == ')' && depth > 0:
			depth--
			if depth > 0 && n == 1 {
				c.WriteByte(ch)
			}
		case depth > 0:
			if n == 1 {
				c.WriteByte(ch)
			}
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), strings.TrimSpace(c.String())
}

// unquotePhrase removes the quoting of a phrase: double quotes and the
// backslashes of quoted pairs; surrounding whitespace is trimmed.
func unquotePhrase(s string) string {
	s = strings.TrimSpace(s)
	if strings.IndexByte(s, '"') < 0 {
		return s
	}
	var b strings.Builder
	quote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quote && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			quote = !quote
		default:
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}
