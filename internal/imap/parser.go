// This file reads commands from the client (RFC 9051 §9 grammar): the
// command line, tags, atoms, quoted strings and literals — synchronizing
// {n}, non-synchronizing {n+} (RFC 7888) and literal8 ~{n} (RFC 3516). A
// literal is read only when a token asks for it, with the continuation
// request sent only for a synchronizing one. An oversized or refused
// literal is answered, and its bytes (if the client sends them anyway) are
// consumed as data by discardCommand, never read as commands. Every parse
// failure is a *syntaxError, which the session answers with BAD in one place.

package imap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Limits of what a client may send.
const (
	// DefaultMaxLineLength bounds one line of a command (without its
	// literals) unless Options.MaxLineLength says otherwise: long enough
	// for a UID set of many thousands of ranges, which clients such as
	// mbsync send, and small enough to be buffered per connection.
	DefaultMaxLineLength = 64 * 1024
	// maxDiscard bounds how much of an overlong line is read and dropped
	// before the session is ended instead: past it the client is not
	// speaking IMAP, and reading on would only spend bandwidth.
	maxDiscard = 1 << 20
	// maxStringLiteral bounds a literal that is not a message (a mailbox
	// name, a search string, a password): these are held in memory.
	maxStringLiteral = 1 << 20
	// minLiteralRate is the slowest a literal's data may arrive, in bytes
	// per second, beyond the command timeout: a client announcing a large
	// literal and trickling it cannot hold the session for ever.
	minLiteralRate = 16 << 10
)

// syntaxError is a malformed command: the session answers BAD with msg.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

func syntaxErrorf(format string, args ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, args...)}
}

// literalError is a literal refused before its data was read (too large):
// the session answers with code and msg; a synchronizing literal's data is
// never sent by the client then, a non-synchronizing one's is discarded.
type literalError struct {
	kind string // "BAD" (default) or "NO"
	code string // response code, e.g. "TOOBIG"
	msg  string
}

func (e *literalError) Error() string { return e.msg }

// lineTooLongError is a command line longer than the limit; its bytes
// were consumed up to the end of the line, of which the parser keeps the
// tail, so that a literal announced there is still recognised (and its
// data discarded rather than read as commands).
type lineTooLongError struct{ limit int }

func (e *lineTooLongError) Error() string {
	return fmt.Sprintf("command line too long (limit %d bytes)", e.limit)
}

func (e *lineTooLongError) Is(target error) bool { return target == errLineTooLong }

// errLineTooLong matches any lineTooLongError (errors.Is).
var errLineTooLong = errors.New("command line too long")

// errLiteralOverflow is a non-synchronizing literal whose size does not
// fit in 63 bits: its data cannot be skipped, so the session ends.
var errLiteralOverflow = errors.New("literal size out of range")

// errCommandTimeout is a command line that did not end within the command
// timeout of its first byte.
var errCommandTimeout = errors.New("command timed out")

// errLineFar is a line so much longer than the limit (maxDiscard) that
// the session ends rather than reading on.
var errLineFar = fmt.Errorf("command line longer than %d bytes", maxDiscard)

// literalSpec is a literal announced at the end of the current line.
type literalSpec struct {
	size   int64
	sync   bool // {n}: the client waits for a continuation request
	binary bool // ~{n}: literal8 (RFC 3516)
}

// parser reads one command at a time from the connection.
type parser struct {
	r        *bufio.Reader
	line     []byte // the current line, without CRLF
	pos      int
	consumed bool                    // the current line's trailing literal was read (or refused)
	cont     func(text string) error // sends a continuation request "+ text"
	maxLine  int                     // the line limit; 0: DefaultMaxLineLength
	// deadline, if set, sets the connection's read deadline; the parser
	// applies the command timeout from a line's first byte to its end and
	// to a literal's data (in proportion to its size), so that a client
	// trickling bytes is dropped.
	deadline       func(time.Time)
	commandTimeout time.Duration
	// broken: a literal that cannot be skipped was announced; the
	// connection must end.
	broken bool
}

// tailKeep is how much of an overlong line is kept: enough for a literal
// announcement ("~{" 19 digits "+}").
const tailKeep = 32

// readLine reads the next line (CRLF or bare LF ends it) into p.line. A
// line over the limit is consumed to its end and a lineTooLongError
// returned, with p.line holding its tail; one over maxDiscard is
// errLineFar, after which the connection cannot be used.
func (p *parser) readLine() error {
	p.line = p.line[:0]
	p.pos = 0
	p.consumed = false
	if p.deadline != nil && p.commandTimeout > 0 {
		// Waiting for the line is the caller's deadline (idle); once
		// it starts, the rest must follow within the command timeout.
		if _, err := p.r.Peek(1); err != nil {
			return err
		}
		p.deadline(time.Now().Add(p.commandTimeout))
	}
	limit := p.maxLine
	if limit <= 0 {
		limit = DefaultMaxLineLength
	}
	read := 0
	for {
		chunk, err := p.r.ReadSlice('\n')
		read += len(chunk)
		if read <= limit+2 {
			p.line = append(p.line, chunk...)
		} else {
			if read > maxDiscard {
				return errLineFar
			}
			p.line = append(p.line, chunk...)
			if n := len(p.line); n > tailKeep {
				p.line = p.line[:copy(p.line, p.line[n-tailKeep:])]
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && p.deadline != nil && p.commandTimeout > 0 {
			return errCommandTimeout
		}
		if err != nil {
			return err
		}
		break
	}
	p.line = p.line[:len(p.line)-1]
	if n := len(p.line); n > 0 && p.line[n-1] == '\r' {
		p.line = p.line[:n-1]
	}
	if read > limit+2 {
		return &lineTooLongError{limit: limit}
	}
	return nil
}

// trailingLiteral reports the literal announced at the end of the current
// line, if any, and where its announcement starts. A line ending in
// "{digits}" or "{digits+}" is a literal whatever precedes it: treating
// ambiguous input as data keeps its bytes from running as commands.
func (p *parser) trailingLiteral() (spec literalSpec, start int, ok bool) {
	l := p.line
	n := len(l)
	if n < 3 || l[n-1] != '}' {
		return spec, 0, false
	}
	end := n - 1
	spec.sync = true
	if l[end-1] == '+' {
		spec.sync = false
		end--
	}
	i := end
	for i > 0 && l[i-1] >= '0' && l[i-1] <= '9' {
		i--
	}
	if i == end || i == 0 || l[i-1] != '{' {
		return spec, 0, false
	}
	size, err := strconv.ParseInt(string(l[i:end]), 10, 64)
	if err != nil {
		// Too many digits for any size: still a literal announcement
		// (its data must not run as commands), larger than every limit.
		size = math.MaxInt64
	}
	spec.size = size
	start = i - 1
	if start > 0 && l[start-1] == '~' {
		spec.binary = true
		start--
	}
	return spec, start, true
}

// discardCommand consumes what remains of the current command after an
// error: the data of non-synchronizing literals (with the lines that follow
// them), so that none of it is taken for a command. It stops at a
// synchronizing literal, whose data the client sends only after a
// continuation request it will not get.
func (p *parser) discardCommand() error {
	for range 1000 { // a command has few literals; this bounds a hostile one
		spec, _, ok := p.trailingLiteral()
		if !ok || p.consumed || spec.sync {
			return nil
		}
		if spec.size == math.MaxInt64 {
			p.broken = true
			return errLiteralOverflow
		}
		p.consumed = true
		p.literalDeadline(spec.size)
		if _, err := io.CopyN(io.Discard, p.r, spec.size); err != nil {
			return err
		}
		if err := p.readLine(); err != nil && !errors.Is(err, errLineTooLong) {
			return err
		}
	}
	return errors.New("too many literals in one command")
}

// atEnd reports whether the current line is used up.
func (p *parser) atEnd() bool { return p.pos >= len(p.line) }

// end checks that the command is complete.
func (p *parser) end() error {
	if !p.atEnd() {
		return syntaxErrorf("unexpected characters at end of command: %q", clip(p.line[p.pos:]))
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

func (p *parser) peek() byte {
	if p.atEnd() {
		return 0
	}
	return p.line[p.pos]
}

// take consumes c if it is next.
func (p *parser) take(c byte) bool {
	if p.peek() == c && !p.atEnd() {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(c byte) error {
	if !p.take(c) {
		if p.atEnd() {
			return syntaxErrorf("expected %q, got end of line", c)
		}
		return syntaxErrorf("expected %q at %q", c, clip(p.line[p.pos:]))
	}
	return nil
}

func (p *parser) sp() error { return p.expect(' ') }

// takeWord consumes word (case-insensitive) if it comes next, followed by a
// non-atom character.
func (p *parser) takeWord(word string) bool {
	n := len(word)
	if len(p.line)-p.pos < n || !strings.EqualFold(string(p.line[p.pos:p.pos+n]), word) {
		return false
	}
	if p.pos+n < len(p.line) && isAtomChar(p.line[p.pos+n]) {
		return false
	}
	p.pos += n
	return true
}

// isAtomChar: ATOM-CHAR, any CHAR except atom-specials.
func isAtomChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

func isAstringChar(c byte) bool { return isAtomChar(c) || c == ']' }

func isListChar(c byte) bool { return isAstringChar(c) || c == '%' || c == '*' }

func (p *parser) span(ok func(byte) bool) string {
	start := p.pos
	for p.pos < len(p.line) && ok(p.line[p.pos]) {
		p.pos++
	}
	return string(p.line[start:p.pos])
}

// atom reads an atom.
func (p *parser) atom() (string, error) {
	a := p.span(isAtomChar)
	if a == "" {
		return "", p.unexpected("atom")
	}
	return a, nil
}

func (p *parser) unexpected(what string) error {
	if p.atEnd() {
		return syntaxErrorf("expected %s, got end of line", what)
	}
	return syntaxErrorf("expected %s at %q", what, clip(p.line[p.pos:]))
}

// tag reads a command tag: any ASTRING-CHAR but "+".
func (p *parser) tag() (string, error) {
	t := p.span(func(c byte) bool { return isAstringChar(c) && c != '+' })
	if t == "" {
		return "", syntaxErrorf("missing tag")
	}
	return t, nil
}

// number reads a 32-bit unsigned number.
func (p *parser) number() (uint32, error) {
	d := p.span(func(c byte) bool { return c >= '0' && c <= '9' })
	if d == "" {
		return 0, p.unexpected("number")
	}
	n, err := strconv.ParseUint(d, 10, 32)
	if err != nil {
		return 0, syntaxErrorf("number out of range: %s", d)
	}
	return uint32(n), nil
}

// number64 reads a 63-bit unsigned number.
func (p *parser) number64() (int64, error) {
	d := p.span(func(c byte) bool { return c >= '0' && c <= '9' })
	if d == "" {
		return 0, p.unexpected("number")
	}
	n, err := strconv.ParseInt(d, 10, 64)
	if err != nil {
		return 0, syntaxErrorf("number out of range: %s", d)
	}
	return n, nil
}

// quoted reads a quoted string; 8-bit (UTF-8) content is accepted.
func (p *parser) quoted() (string, error) {
	if err := p.expect('"'); err != nil {
		return "", err
	}
	var b []byte
	for {
		if p.atEnd() {
			return "", syntaxErrorf("unterminated quoted string")
		}
		c := p.line[p.pos]
		p.pos++
		switch c {
		case '"':
			return string(b), nil
		case '\\':
			if p.atEnd() || (p.line[p.pos] != '"' && p.line[p.pos] != '\\') {
				return "", syntaxErrorf("bad escape in quoted string")
			}
			b = append(b, p.line[p.pos])
			p.pos++
		case 0:
			return "", syntaxErrorf("NUL in quoted string")
		default:
			b = append(b, c)
		}
	}
}

// literalStart checks that a literal announcement is next and is the end
// of the line, and returns it.
func (p *parser) literalStart() (literalSpec, error) {
	spec, start, ok := p.trailingLiteral()
	if !ok || start != p.pos || p.consumed {
		return spec, p.unexpected("literal")
	}
	return spec, nil
}

// literal reads a literal of at most max bytes into memory and moves on to
// the line that follows it.
func (p *parser) literal(max int64) ([]byte, error) {
	spec, err := p.literalStart()
	if err != nil {
		return nil, err
	}
	if spec.size > max {
		return nil, &literalError{code: "TOOBIG", msg: fmt.Sprintf("literal too large (limit %d bytes)", max)}
	}
	if err := p.beginLiteral(spec); err != nil {
		return nil, err
	}
	buf := make([]byte, spec.size)
	if _, err := io.ReadFull(p.r, buf); err != nil {
		return nil, err
	}
	return buf, p.readLine()
}

// beginLiteral marks the literal as taken and asks for its data if the
// client waits for that.
func (p *parser) beginLiteral(spec literalSpec) error {
	p.consumed = true
	p.pos = len(p.line)
	p.literalDeadline(spec.size)
	if spec.sync {
		return p.cont("Ready for literal data")
	}
	return nil
}

// literalDeadline gives a literal of size bytes the command timeout plus
// the time it takes at minLiteralRate.
func (p *parser) literalDeadline(size int64) {
	if p.deadline == nil || p.commandTimeout <= 0 {
		return
	}
	p.deadline(time.Now().Add(p.commandTimeout + time.Duration(size/minLiteralRate)*time.Second))
}

// finishLiteral discards what the consumer of a streamed literal left
// unread and reads the line that follows it.
func (p *parser) finishLiteral(r *io.LimitedReader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	return p.readLine()
}

// astring reads an atom (with "]"), a quoted string or a literal.
func (p *parser) astring() (string, error) {
	switch p.peek() {
	case '"':
		return p.quoted()
	case '{':
		b, err := p.literal(maxStringLiteral)
		return string(b), err
	}
	a := p.span(isAstringChar)
	if a == "" {
		return "", p.unexpected("string")
	}
	return a, nil
}

// str reads a quoted string or a literal.
func (p *parser) str() (string, error) {
	switch p.peek() {
	case '"':
		return p.quoted()
	case '{':
		b, err := p.literal(maxStringLiteral)
		return string(b), err
	}
	return "", p.unexpected("string")
}

// listMailbox reads a LIST pattern: list-chars or a string.
func (p *parser) listMailbox() (string, error) {
	switch p.peek() {
	case '"', '{':
		return p.astring()
	}
	a := p.span(isListChar)
	if a == "" {
		return "", p.unexpected("mailbox pattern")
	}
	return a, nil
}

// flag reads a flag: "\" atom or a keyword atom.
func (p *parser) flag() (string, error) {
	if p.take('\\') {
		if p.take('*') {
			return `\*`, nil
		}
		a, err := p.atom()
		return `\` + a, err
	}
	return p.atom()
}

// flagList reads "(" [flag *(SP flag)] ")".
func (p *parser) flagList() ([]string, error) {
	if err := p.expect('('); err != nil {
		return nil, err
	}
	var flags []string
	for !p.take(')') {
		if len(flags) > 0 {
			if err := p.sp(); err != nil {
				return nil, err
			}
		}
		f, err := p.flag()
		if err != nil {
			return nil, err
		}
		flags = append(flags, f)
	}
	return flags, nil
}

// flagsArg reads a flag list or, as RFC 9051 store-att-flags allows, flags
// separated by spaces without parentheses.
func (p *parser) flagsArg() ([]string, error) {
	if p.peek() == '(' {
		return p.flagList()
	}
	var flags []string
	for {
		f, err := p.flag()
		if err != nil {
			return nil, err
		}
		flags = append(flags, f)
		if !p.take(' ') {
			return flags, nil
		}
	}
}

var months = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// date reads a date: "d-Mon-yyyy", quoted or not (RFC 9051 date).
func (p *parser) date() (time.Time, error) {
	var s string
	var err error
	if p.peek() == '"' {
		s, err = p.quoted()
	} else {
		s, err = p.atom()
	}
	if err != nil {
		return time.Time{}, err
	}
	t, ok := parseDate(s)
	if !ok {
		return time.Time{}, syntaxErrorf("bad date %q", s)
	}
	return t, nil
}

func parseDate(s string) (time.Time, bool) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	day, err1 := strconv.Atoi(parts[0])
	year, err2 := strconv.Atoi(parts[2])
	mon := -1
	for i, m := range months {
		if strings.EqualFold(parts[1], m) {
			mon = i
		}
	}
	if err1 != nil || err2 != nil || mon < 0 || day < 1 || day > 31 || len(parts[2]) != 4 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(mon+1), day, 0, 0, 0, 0, time.Local), true
}

// dateTime reads a quoted date-time: "dd-Mon-yyyy hh:mm:ss +zzzz", the day
// possibly space-padded.
func (p *parser) dateTime() (time.Time, error) {
	s, err := p.quoted()
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse("_2-Jan-2006 15:04:05 -0700", s)
	if err != nil {
		return time.Time{}, syntaxErrorf("bad date-time %q", s)
	}
	return t, nil
}

// numRange is one element of a sequence set; 0 stands for "*".
type numRange struct{ first, last uint32 }

// numSet is a sequence set (RFC 9051 sequence-set) or "$" (RFC 5182).
type numSet struct {
	ranges []numRange
	saved  bool // "$": the last saved search result
}

// seqSet reads a sequence set or "$".
func (p *parser) seqSet() (numSet, error) {
	var s numSet
	if p.take('$') {
		s.saved = true
		return s, nil
	}
	for {
		first, err := p.seqNumber()
		if err != nil {
			return s, err
		}
		r := numRange{first, first}
		if p.take(':') {
			if r.last, err = p.seqNumber(); err != nil {
				return s, err
			}
		}
		s.ranges = append(s.ranges, r)
		if !p.take(',') {
			return s, nil
		}
	}
}

func (p *parser) seqNumber() (uint32, error) {
	if p.take('*') {
		return 0, nil
	}
	n, err := p.number()
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, syntaxErrorf("0 is not a valid message number")
	}
	return n, nil
}
