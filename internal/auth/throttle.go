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

import (
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
	n    int       // failures since the key was last forgotten
	last time.Time // time of the latest one
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
func (t *Throttle) Failed(addr netip.Addr, account string) time.Duration {
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := record(t, t.addrs, addrKey(addr), now)
	if account != "" {
		n = max(n, record(t, t.accounts, strings.ToLower(account), now))
	}
	return t.delay(n)
}

// Failures returns the recent failures counted for addr and for account,
// for logs and tests.
func (t *Throttle) Failures(addr netip.Addr, account string) (byAddr, byAccount int) {
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.addrs[addrKey(addr)]; f != nil && now.Sub(f.last) < t.opts.ForgetAfter {
		byAddr = f.n
	}
	if f := t.accounts[strings.ToLower(account)]; f != nil && now.Sub(f.last) < t.opts.ForgetAfter {
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
	if f != nil && now.Sub(f.last) >= t.opts.ForgetAfter {
		f.n = 0
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
		if now.Sub(f.last) >= t.opts.ForgetAfter {
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
