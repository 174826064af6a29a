package auth

// This file holds login-failure throttling, shared by every protocol that
// checks passwords (POP3 now, IMAP and submission later).
//
// The contract (DESIGN.md §4): throttling is keyed on failures, so that a
// client that logs in correctly is never slowed by someone else's failures.
// Loft therefore delays only the answer to a failed attempt, never a
// successful one: a correct password is answered at once whatever happened
// before. The delay grows exponentially with the recent failures of the
// source address and of the account tried, whichever is larger, so that
// both a guesser trying many accounts from one address and a botnet trying
// one account from many addresses wait longer and longer for each "no".
// Protocols add a per-connection limit (disconnect after a few failures) so
// that the delays cannot be sidestepped by pipelining on one connection.
// A success resets nothing: an attacker holding one valid account could
// otherwise wipe his address's record between guesses at other accounts,
// and the counts cost a successful login nothing anyway.
//
// After BlockAfter recent failures an address is blocked for BlockFor:
// protocols refuse its connections and logins outright (POP3 -ERR
// [SYS/TEMP], IMAP [UNAVAILABLE], SMTP 421), so that a guesser costs no
// more argon2 time. Only addresses are blocked, never accounts: blocking an
// account would let anyone lock its owner out. Each block is logged once,
// as one line carrying the address, for fail2ban and the like:
//
//	level=WARN msg="login failures: address blocked" ip=192.0.2.7 failures=30 for=15m0s until=…

import (
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defaults of ThrottleOptions.
const (
	// DefaultFailureDelay is the wait before answering a first failure:
	// long enough to make guessing slow, short enough that a person who
	// mistyped barely notices.
	DefaultFailureDelay = 500 * time.Millisecond
	// DefaultMaxFailureDelay caps the exponential growth: well under the
	// timeouts of common clients, so they report "wrong password" rather
	// than "server not responding".
	DefaultMaxFailureDelay = 15 * time.Second
	// DefaultForgetAfter is how long failures are remembered after the last
	// one: a user who mistyped yesterday starts afresh today.
	DefaultForgetAfter = 15 * time.Minute
	// DefaultMaxTracked bounds the memory of each table (addresses,
	// accounts), about 100 bytes an entry, against a flood of made-up
	// names or spoofed-looking address ranges.
	DefaultMaxTracked = 100000
	// DefaultBlockFor is how long a blocked address stays blocked.
	DefaultBlockFor = 15 * time.Minute
)

// ThrottleOptions configure a Throttle. Zero fields take the defaults.
type ThrottleOptions struct {
	// FailureDelay is the delay after the first failure; each further
	// failure doubles it.
	FailureDelay time.Duration
	// MaxFailureDelay caps the delay.
	MaxFailureDelay time.Duration
	// ForgetAfter is how long after its last failure an address or account
	// is forgotten.
	ForgetAfter time.Duration
	// MaxTracked bounds the number of addresses and of accounts tracked.
	MaxTracked int
	// BlockAfter recent failures from one address block it for BlockFor;
	// 0 never blocks.
	BlockAfter int
	// BlockFor is how long a block lasts; DefaultBlockFor if 0.
	BlockFor time.Duration
	// Logger receives the line logged when a block starts; nil discards.
	Logger *slog.Logger
	// Now returns the current time; tests replace it.
	Now func() time.Time
}

// Throttle counts recent login failures per source address and per account
// and tells how long to hold back the answer to a failed attempt. It is
// safe for concurrent use; one Throttle serves every protocol, so failures
// over POP3 count for IMAP too.
type Throttle struct {
	opts ThrottleOptions

	mu       sync.Mutex
	addrs    map[netip.Prefix]*failures // by source network, see addrKey
	accounts map[string]*failures       // by lower-case login name
}

// failures is the recent failure count of one key.
type failures struct {
	n       int       // failures since the key was last forgotten
	last    time.Time // time of the latest one
	blocked time.Time // addresses: refused until then (zero: not blocked)
}

// forgotten reports whether f no longer counts at now.
func (f *failures) forgotten(now time.Time, forgetAfter time.Duration) bool {
	return now.Sub(f.last) >= forgetAfter && !now.Before(f.blocked)
}

// NewThrottle returns a Throttle with opts (defaults for zero fields).
func NewThrottle(opts ThrottleOptions) *Throttle {
	if opts.FailureDelay <= 0 {
		opts.FailureDelay = DefaultFailureDelay
	}
	if opts.MaxFailureDelay <= 0 {
		opts.MaxFailureDelay = DefaultMaxFailureDelay
	}
	opts.MaxFailureDelay = max(opts.MaxFailureDelay, opts.FailureDelay)
	if opts.ForgetAfter <= 0 {
		opts.ForgetAfter = DefaultForgetAfter
	}
	if opts.MaxTracked <= 0 {
		opts.MaxTracked = DefaultMaxTracked
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BlockFor <= 0 {
		opts.BlockFor = DefaultBlockFor
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Throttle{
		opts:     opts,
		addrs:    make(map[netip.Prefix]*failures),
		accounts: make(map[string]*failures),
	}
}

// Failed records a failed login from addr for account (the login name as
// given; "" if none) and returns how long to wait before answering it:
// FailureDelay × 2^(n-1), capped, where n counts this failure and the
// recent ones of the address or of the account, whichever has more.
//
// The BlockAfter-th failure of an address blocks it (see Blocked), and
// logs so once.
func (t *Throttle) Failed(addr netip.Addr, account string) time.Duration {
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	key := addrKey(addr)
	n := record(t, t.addrs, key, now)
	if b := t.opts.BlockAfter; b > 0 && n >= b {
		f := t.addrs[key]
		if !now.Before(f.blocked) { // not blocked yet (or again)
			f.blocked = now.Add(t.opts.BlockFor)
			t.opts.Logger.Warn("login failures: address blocked", "ip", addr.Unmap().String(),
				"failures", n, "for", t.opts.BlockFor, "until", f.blocked.UTC().Format(time.RFC3339))
		}
	}
	if account != "" {
		n = max(n, record(t, t.accounts, strings.ToLower(account), now))
	}
	return t.delay(n)
}

// Blocked reports whether addr is blocked, and until when.
func (t *Throttle) Blocked(addr netip.Addr) (until time.Time, blocked bool) {
	if t.opts.BlockAfter <= 0 {
		return time.Time{}, false
	}
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.addrs[addrKey(addr)]; f != nil && now.Before(f.blocked) {
		return f.blocked, true
	}
	return time.Time{}, false
}

// Failures returns the recent failures counted for addr and for account,
// for logs and tests.
func (t *Throttle) Failures(addr netip.Addr, account string) (byAddr, byAccount int) {
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.addrs[addrKey(addr)]; f != nil && !f.forgotten(now, t.opts.ForgetAfter) {
		byAddr = f.n
	}
	if f := t.accounts[strings.ToLower(account)]; f != nil && !f.forgotten(now, t.opts.ForgetAfter) {
		byAccount = f.n
	}
	return byAddr, byAccount
}

// delay is the wait after the n-th recent failure.
func (t *Throttle) delay(n int) time.Duration {
	d := t.opts.FailureDelay
	for i := 1; i < n && d < t.opts.MaxFailureDelay; i++ {
		d *= 2
	}
	return min(d, t.opts.MaxFailureDelay)
}

// record counts a failure for key in m and returns the key's count.
func record[K comparable](t *Throttle, m map[K]*failures, key K, now time.Time) int {
	f := m[key]
	if f != nil && f.forgotten(now, t.opts.ForgetAfter) {
		// A block that has run out starts the count afresh too.
		f.n, f.blocked = 0, time.Time{}
	}
	if f == nil {
		if len(m) >= t.opts.MaxTracked {
			prune(t, m, now)
		}
		f = &failures{}
		m[key] = f
	}
	f.n++
	f.last = now
	return f.n
}

// prune drops forgotten entries of a full table, and if it is still full,
// arbitrary ones: losing some counts under a flood beats unbounded memory.
func prune[K comparable](t *Throttle, m map[K]*failures, now time.Time) {
	for k, f := range m {
		if f.forgotten(now, t.opts.ForgetAfter) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) < t.opts.MaxTracked {
			break
		}
		delete(m, k)
	}
}

// addrKey groups addresses the way one party usually holds them: one IPv4
// address, or one IPv6 /64 (the smallest network a site is given, so an
// attacker cannot evade the count by hopping inside it).
func addrKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{} // an invalid address: all such share one key
	}
	return p
}
