package soak

// The oracle: every message the load made, and for each copy of it (one
// per account it went to) every place it may be in at the end.
//
// Conflicting concurrent operations are designed out: each copy has one
// owner (a role drawn when the message is made), and only its owner acts
// on it, one operation at a time. So the owner knows the copy's place for
// certain after each acknowledged operation. An operation without reply
// (the server was killed) leaves two possible places, before and after;
// the owner then never touches that copy again (frozen), so the set of
// possible places never grows beyond what one lost reply allows.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// accounts share the load: every role works on every account.
var accounts = []string{"ann@" + domain, "ben@" + domain, "cat@" + domain, "dan@" + domain}

// imapWorkers is the number of IMAP clients per account; each owns its
// messages and its folder.
const imapWorkers = 2

// Roles: who owns a copy of a message.
const (
	roleKeep    = "keep"     // nobody: it stays in the INBOX as delivered
	rolePOPDel  = "pop/del"  // the POP3 client downloads and deletes it
	rolePOPKeep = "pop/keep" // the POP3 client downloads it, leaves it a while, then deletes it
	// "imap/N": IMAP client N, which moves it to its folder and works on it there.
)

func imapRole(n int) string { return fmt.Sprintf("imap/%d", n) }

// folderOf is IMAP client n's folder.
func folderOf(n int) string { return fmt.Sprintf("Soak/%d", n) }

// place is where a copy is: a mailbox and its flags. The zero place is
// "gone" (deleted, expunged, or never stored).
type place struct {
	mailbox string
	flags   string // normalized by flagString
}

var gone = place{}

func (p place) String() string {
	if p == gone {
		return "gone"
	}
	return fmt.Sprintf("%s (%s)", p.mailbox, p.flags)
}

// flagString is the canonical form of a flag list: sorted, space-separated,
// without \Recent (a session property, not stored state).
func flagString[F ~string](flags []F) string {
	var fs []string
	for _, f := range flags {
		if !strings.EqualFold(string(f), `\Recent`) {
			fs = append(fs, string(f))
		}
	}
	slices.Sort(fs)
	return strings.Join(fs, " ")
}

// addFlag is flags with f added.
func addFlag(flags, f string) string {
	fs := strings.Fields(flags)
	if !slices.Contains(fs, f) {
		fs = append(fs, f)
	}
	return flagString(fs)
}

// copyKey names one copy: message id in one account.
type copyKey struct {
	account string
	id      int
}

// copyState is what the oracle knows of one copy.
type copyState struct {
	role     string
	possible []place // where it may be; exactly one when certain
	frozen   bool    // an operation on it got no reply: nobody acts on it again
}

// message is one message the load made.
type message struct {
	id       int
	rcpts    []string // accounts it went to (for an APPEND, the one it was appended in)
	sum      [sha256.Size]byte
	appended bool // by IMAP APPEND: stored as sent; else delivered, with trace fields prepended
}

// oracle is shared by every client of the load.
type oracle struct {
	seed int64

	mu     sync.Mutex
	next   int
	msgs   map[int]*message
	copies map[copyKey]*copyState
}

func newOracle(seed int64) *oracle {
	return &oracle{seed: seed, msgs: map[int]*message{}, copies: map[copyKey]*copyState{}}
}

// newDelivery makes the next message for delivery: its recipients, each
// copy's owner, and its bytes. Every copy may be gone or in the INBOX until
// the server replies.
func (o *oracle) newDelivery() (id int, rcpts []string, body []byte) {
	o.mu.Lock()
	o.next++
	id = o.next
	o.mu.Unlock()
	r := rand.New(rand.NewPCG(uint64(o.seed), uint64(id)))
	i := r.IntN(len(accounts))
	rcpts = []string{accounts[i]}
	if r.IntN(4) == 0 {
		rcpts = append(rcpts, accounts[(i+1+r.IntN(len(accounts)-1))%len(accounts)])
	}
	body = makeBody(r, id, o.seed, rcpts)
	m := &message{id: id, rcpts: rcpts, sum: sha256.Sum256(body)}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs[id] = m
	for _, a := range rcpts {
		var role string
		switch k := r.IntN(100); {
		case k < 8:
			role = roleKeep
		case k < 30:
			role = rolePOPDel
		case k < 45:
			role = rolePOPKeep
		default:
			role = imapRole(r.IntN(imapWorkers))
		}
		o.copies[copyKey{a, id}] = &copyState{role: role, possible: []place{gone, {mailbox: "INBOX"}}}
	}
	return id, rcpts, body
}

// newAppend makes the next message for IMAP client role to APPEND to
// mailbox with flags; until the server replies it may be gone or there.
func (o *oracle) newAppend(account, role string, to place) (id int, body []byte) {
	o.mu.Lock()
	o.next++
	id = o.next
	o.mu.Unlock()
	r := rand.New(rand.NewPCG(uint64(o.seed), uint64(id)))
	body = makeBody(r, id, o.seed, []string{account})
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs[id] = &message{id: id, rcpts: []string{account}, sum: sha256.Sum256(body), appended: true}
	o.copies[copyKey{account, id}] = &copyState{role: role, possible: []place{gone, to}}
	return id, body
}

// ack records an acknowledged operation: the copy is now certainly at p.
func (o *oracle) ack(k copyKey, p place) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.copies[k].possible = []place{p}
}

// lost records an operation that got no reply: the copy may be where it
// was or at p, and nobody acts on it again.
func (o *oracle) lost(k copyKey, p place) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.copies[k]
	if !slices.Contains(c.possible, p) {
		c.possible = append(c.possible, p)
	}
	c.frozen = true
}

// alsoPossible adds a place without freezing the copy: for a change that
// the server may make after its reply, such as POP3's \Seen after RETR,
// when a kill may cut it off.
func (o *oracle) alsoPossible(k copyKey, p place) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.copies[k]
	if !slices.Contains(c.possible, p) {
		c.possible = append(c.possible, p)
	}
}

// certain returns the copy's role and place, and whether its owner may act
// on it: known (made by this load), certain and not frozen.
func (o *oracle) certain(k copyKey) (role string, p place, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.copies[k]
	if c == nil {
		return "", gone, false
	}
	if c.frozen || len(c.possible) != 1 {
		return c.role, gone, false
	}
	return c.role, c.possible[0], true
}

// inInbox reports whether every place the copy may be in is the INBOX and
// nobody froze it: POP3 may then delete it, whatever its flags.
func (o *oracle) inInbox(k copyKey) (role string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.copies[k]
	if c == nil || c.frozen {
		return "", false
	}
	for _, p := range c.possible {
		if p.mailbox != "INBOX" {
			return c.role, false
		}
	}
	return c.role, true
}

// role is the copy's owner, "" for a copy the load never made.
func (o *oracle) role(k copyKey) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.copies[k]; c != nil {
		return c.role
	}
	return ""
}

// message is the message with the given id, or nil.
func (o *oracle) message(id int) *message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.msgs[id]
}

// textPool is random printable text that message lines are cut from:
// cheaper than drawing every byte, and as deterministic.
var textPool = func() []byte {
	const printable = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_=+/()<>@#"
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = printable[r.IntN(len(printable))]
	}
	return b
}()

// makeBody builds message id: mostly 1-24 KB, sometimes up to 200 KB, with
// long lines, lines that need dot-stuffing and 8-bit text, CRLF line
// endings as the store keeps them.
func makeBody(r *rand.Rand, id int, seed int64, rcpts []string) []byte {
	size := 1<<10 + r.IntN(23<<10)
	if r.IntN(50) == 0 {
		size = 100<<10 + r.IntN(100<<10)
	}
	var b bytes.Buffer
	b.Grow(size + 12000)
	fmt.Fprintf(&b, "Message-ID: <%d.%d@soak.loft.test>\r\nX-Soak-Id: %d.%d\r\n", id, seed, id, seed)
	fmt.Fprintf(&b, "From: Soak Test <load@example.net>\r\nTo: %s\r\n", strings.Join(rcpts, ", "))
	fmt.Fprintf(&b, "Subject: soak message %d\r\nDate: Sun, 22 Nov 2026 01:00:00 +0000\r\n", id)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	line := func(n int) {
		at := r.IntN(len(textPool) - n)
		b.Write(textPool[at : at+n])
		b.WriteString("\r\n")
	}
	for b.Len() < size {
		switch k := r.IntN(60); {
		case k == 0:
			line(1000 + r.IntN(5000))
		case k == 1:
			b.WriteString(".")
			line(r.IntN(3))
		case k == 2:
			b.WriteString("8-bit: Grüße, naïve café, 日本語のテキスト\r\n")
		default:
			line(r.IntN(100))
		}
	}
	return b.Bytes()
}

var soakID = regexp.MustCompile(`(?m)^X-Soak-Id: (\d+)\.(-?\d+)\r?$`)

// idOf finds the message id in a header or whole message of this seed's
// load; 0 if there is none.
func (o *oracle) idOf(header []byte) int {
	m := soakID.FindSubmatch(header)
	if m == nil || string(m[2]) != strconv.FormatInt(o.seed, 10) {
		return 0
	}
	id, _ := strconv.Atoi(string(m[1]))
	return id
}

// sumOK reports whether a message as the server returned it is message id
// byte for byte: less the Return-Path and Received fields that delivery
// prepends.
func (o *oracle) sumOK(id int, body []byte) (bool, error) {
	m := o.message(id)
	if m == nil {
		return false, fmt.Errorf("message %d was never made", id)
	}
	if !m.appended {
		var err error
		if body, err = stripTrace(body); err != nil {
			return false, err
		}
	}
	return sha256.Sum256(body) == m.sum, nil
}

// stripTrace removes the Return-Path and Received header fields that Loft
// prepends on delivery and returns the message as the client sent it.
func stripTrace(body []byte) ([]byte, error) {
	line := func() []byte {
		i := bytes.Index(body, []byte("\r\n"))
		if i < 0 {
			return nil
		}
		l := body[:i]
		body = body[i+2:]
		return l
	}
	if l := line(); !bytes.HasPrefix(l, []byte("Return-Path: <")) {
		return nil, fmt.Errorf("first line %.80q, want Return-Path", l)
	}
	if l := line(); !bytes.HasPrefix(l, []byte("Received: from ")) {
		return nil, fmt.Errorf("second line %.80q, want Received", l)
	}
	for len(body) > 0 && (body[0] == '\t' || body[0] == ' ') {
		line()
	}
	return body, nil
}
