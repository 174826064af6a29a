package auth

// This file holds the Authenticator, which every protocol asks whether a
// login is good: it looks the account up, checks the password (argon2id,
// through a cache of recent successes and a cap on concurrent hashing) or
// runs SCRAM-SHA-256, slows failures down through the Throttle, refuses
// blocked addresses, and counts the sessions of an account per address.
//
// An unknown account and a wrong password look the same from outside: the
// same error (the protocols answer both with the same words), and the same
// time, because an unknown account is checked against a dummy hash made
// with today's parameters, and both failures wait the same throttle delay.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"

	"loft/internal/store"
)

// Mechanisms are the SASL mechanisms Loft offers, strongest first (RFC
// 4422 leaves the order to the server; clients pick the first they know).
// All of them need TLS or a connection auth.plaintext allows: SCRAM does
// not reveal the password, but a session without TLS reveals the mail.
var Mechanisms = []string{SCRAMSHA256, sasl.Plain, sasl.Login}

// Defaults of AuthenticatorOptions.
const (
	// DefaultCacheTTL is how long a successful password login is
	// remembered: IMAP clients that open a connection per folder, or
	// reconnect every few minutes, then pay argon2id once per TTL rather
	// than every time. Short, so that a password changed elsewhere (which
	// also invalidates the entry at once here) or a stolen session key
	// ages out soon.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultCacheEntries bounds the cache: about 200 bytes an entry.
	DefaultCacheEntries = 100000
)

// Errors of a login, besides the SASL ones of sasl.go.
var (
	// ErrFailed: wrong password or unknown account (a *FailedError). The
	// answer has already been held back by the throttle's delay.
	ErrFailed = errors.New("auth: authentication failed")
	// ErrBlocked: the client's address is blocked after too many failures
	// (a *BlockedError).
	ErrBlocked = errors.New("auth: address blocked after too many failed logins")
)

// FailedError is a failed login, for the protocol's log line. Its Reason
// is for the log only: the client is told the same for every reason.
type FailedError struct {
	Username string
	Reason   string        // "no such account", "wrong password", …
	Delay    time.Duration // how long the answer was held back
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("auth: login of %q failed: %s", e.Username, e.Reason)
}

// Is makes errors.Is(err, ErrFailed) true.
func (e *FailedError) Is(target error) bool { return target == ErrFailed }

// BlockedError refuses a blocked address.
type BlockedError struct{ Until time.Time }

func (e *BlockedError) Error() string {
	return "auth: address blocked after too many failed logins until " + e.Until.UTC().Format(time.RFC3339)
}

// Is makes errors.Is(err, ErrBlocked) true.
func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

// Accounts is what the Authenticator needs of the store (*store.Store).
type Accounts interface {
	LoginSecrets(ctx context.Context, address string) (*store.LoginSecrets, error)
	AddSCRAM(ctx context.Context, accountID int64, passwordHash, scram string) (bool, error)
}

// AuthenticatorOptions configure an Authenticator. Zero fields take the
// defaults.
type AuthenticatorOptions struct {
	Accounts Accounts
	// Throttle counts failures; nil makes a private one with defaults.
	// Share one between every protocol.
	Throttle *Throttle
	// CacheTTL is how long a successful password login is remembered;
	// DefaultCacheTTL if 0, no cache if negative.
	CacheTTL time.Duration
	// CacheEntries bounds the cache; DefaultCacheEntries if 0.
	CacheEntries int
	// MaxHashing bounds the argon2id computations running at once; 2 ×
	// GOMAXPROCS if 0. Each holds its memory cost (19 MiB) for its whole
	// run, so the cap bounds memory, and logins beyond it queue rather
	// than thrash the CPU for everyone.
	MaxHashing int
	// MaxSessionsPerAccountIP bounds OpenSession: the logged-in sessions
	// of one account from one address; 0 for no limit.
	MaxSessionsPerAccountIP int
	// Logger receives debug lines; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; tests replace it.
	Now func() time.Time
	// DummyHash is what a password for an unknown account is checked
	// against; "" makes one with today's parameters, which a real server
	// needs (its cost is what hides which accounts exist). Fuzz tests set
	// a cheap one.
	DummyHash string
	// ReleaseAfter is how long after the last argon2id computation of a
	// burst its memory is given back to the kernel (see releaseMemory);
	// DefaultReleaseAfter if 0, never if negative.
	ReleaseAfter time.Duration
}

// DefaultReleaseAfter is AuthenticatorOptions.ReleaseAfter's default.
const DefaultReleaseAfter = time.Second

// Identity is who logged in.
type Identity struct {
	AccountID int64
	Address   string // lower-case, as stored
}

// Authenticator checks logins for every protocol. It is safe for
// concurrent use; one serves the whole server.
type Authenticator struct {
	opts     AuthenticatorOptions
	accounts Accounts
	throttle *Throttle
	log      *slog.Logger
	hashing  chan struct{} // semaphore of argon2id computations
	// verifyPassword is VerifyPassword; tests watch it.
	verifyPassword func(hash, password string) (bool, error)
	hashes         atomic.Uint64 // argon2id computations done
	// freeOSMemory is debug.FreeOSMemory; tests watch it.
	freeOSMemory func()
	release      *time.Timer // under mu; nil until the first hash
	// dummy is an argon2id hash no password matches, made on first need
	// (it costs as much as a login).
	dummyOnce sync.Once
	dummy     string
	key       []byte // per-process key of the cache and of made-up SCRAM salts

	mu       sync.Mutex
	cache    map[[sha256.Size]byte]cacheEntry
	sessions map[sessionKey]int
}

// cacheEntry remembers one successful login. It is keyed by an HMAC of
// (address, password) under the per-process key, never the password, and
// holds the password hash it was checked against: a password changed since
// (by `loft account passwd`, in another process) no longer matches.
type cacheEntry struct {
	hash    string
	id      Identity
	expires time.Time
}

type sessionKey struct {
	account int64
	addr    netip.Prefix
}

// NewAuthenticator returns an Authenticator on opts.Accounts.
func NewAuthenticator(opts AuthenticatorOptions) *Authenticator {
	if opts.Throttle == nil {
		opts.Throttle = NewThrottle(ThrottleOptions{})
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = DefaultCacheEntries
	}
	if opts.MaxHashing <= 0 {
		opts.MaxHashing = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReleaseAfter == 0 {
		opts.ReleaseAfter = DefaultReleaseAfter
	}
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand panics rather)
	return &Authenticator{
		opts:           opts,
		accounts:       opts.Accounts,
		throttle:       opts.Throttle,
		log:            opts.Logger,
		hashing:        make(chan struct{}, opts.MaxHashing),
		verifyPassword: VerifyPassword,
		freeOSMemory:   debug.FreeOSMemory,
		dummy:          opts.DummyHash,
		key:            key,
		cache:          make(map[[sha256.Size]byte]cacheEntry),
		sessions:       make(map[sessionKey]int),
	}
}

// Throttle returns the throttle the Authenticator counts failures in.
func (a *Authenticator) Throttle() *Throttle { return a.throttle }

// Hashes reports how many password hashes the Authenticator has computed:
// logins served from the cache compute none (for metrics, and for tests of
// the protocols that must use the cache).
func (a *Authenticator) Hashes() uint64 { return a.hashes.Load() }

// Blocked reports whether addr is blocked, and until when: protocols refuse
// such a client at once, before any password.
func (a *Authenticator) Blocked(addr netip.Addr) (time.Time, bool) {
	return a.throttle.Blocked(addr)
}

// CheckPassword checks a password login from remote. It returns the
// account's identity, or an error: *BlockedError, *FailedError (after the
// throttle's delay, or less if ctx ends first), or a store failure.
func (a *Authenticator) CheckPassword(ctx context.Context, remote netip.Addr, username, password string) (*Identity, error) {
	if until, blocked := a.throttle.Blocked(remote); blocked {
		return nil, &BlockedError{Until: until}
	}
	key := a.cacheKey(username, password)
	sec, err := a.accounts.LoginSecrets(ctx, username)
	if errors.Is(err, store.ErrNoAccount) {
		// Spend what a real check spends, so that the time of the answer
		// does not tell which accounts exist.
		dummy := a.dummyHash()
		a.lookupCache(key, dummy)
		if _, err := a.verify(ctx, dummy, password); err != nil {
			return nil, err
		}
		return nil, a.fail(ctx, remote, username, "no such account")
	}
	if err != nil {
		return nil, err
	}
	if id, ok := a.lookupCache(key, sec.PasswordHash); ok {
		return id, nil
	}
	ok, err := a.verify(ctx, sec.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("auth: stored password hash of %s: %w", sec.Address, err)
	}
	if !ok {
		return nil, a.fail(ctx, remote, username, "wrong password")
	}
	id := &Identity{AccountID: sec.AccountID, Address: sec.Address}
	a.storeCache(key, sec.PasswordHash, *id)
	if sec.SCRAMSHA256 == "" {
		a.addSCRAM(ctx, sec, password)
	}
	return id, nil
}

// dummyHash returns the hash unknown accounts are checked against:
// DummyHash, or one of today's parameters.
func (a *Authenticator) dummyHash() string {
	a.dummyOnce.Do(func() {
		if a.dummy == "" {
			h, err := HashPassword(rand.Text())
			if err != nil {
				panic(err) // only a broken crypto/rand gets here
			}
			a.dummy = h
		}
	})
	return a.dummy
}

// verify runs VerifyPassword within the cap on concurrent hashing.
func (a *Authenticator) verify(ctx context.Context, hash, password string) (bool, error) {
	select {
	case a.hashing <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() {
		<-a.hashing
		a.hashed()
	}()
	a.hashes.Add(1)
	return a.verifyPassword(hash, password)
}

// hashed (re)arms the release of hashing memory after a computation: it
// fires ReleaseAfter after the last one of a burst.
func (a *Authenticator) hashed() {
	if a.opts.ReleaseAfter < 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.release == nil {
		a.release = time.AfterFunc(a.opts.ReleaseAfter, a.releaseMemory)
	} else {
		a.release.Reset(a.opts.ReleaseAfter)
	}
}

// releaseMemory gives the memory of finished argon2id computations back
// to the kernel. Each allocates 19 MiB; Go frees it at the next
// collection but returns the pages to the kernel only slowly, and sizes
// its next collection by the peak, so a burst of logins (a server's
// start, when every client reconnects) left the process tens of
// megabytes larger for minutes: 1,000 sessions in IDLE after 50 first
// logins held 134 KB each instead of some 20 (docs/BENCHMARKS.md). One
// forced collection after the burst is cheap beside the hashes that
// caused it; while one is still running, its end re-arms the release.
func (a *Authenticator) releaseMemory() {
	if len(a.hashing) > 0 {
		return
	}
	a.freeOSMemory()
}

// Failed counts a failed login that the protocol found itself (a PLAIN
// authorization identity naming another user, say) like one found here:
// it holds the answer back for the throttle's delay and returns the
// *FailedError to answer with.
func (a *Authenticator) Failed(ctx context.Context, remote netip.Addr, username, reason string) error {
	return a.fail(ctx, remote, username, reason)
}

// fail counts a failure and holds the answer back for the throttle's
// delay.
func (a *Authenticator) fail(ctx context.Context, remote netip.Addr, username, reason string) error {
	delay := a.throttle.Failed(remote, username)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return &FailedError{Username: username, Reason: reason, Delay: delay}
}

// addSCRAM fills in the SCRAM keys of an account that has none (created
// before Loft kept them), from the password just verified, so that it can
// use SCRAM-SHA-256 from its next login on. Best effort: a failure is
// logged, the login goes on.
func (a *Authenticator) addSCRAM(ctx context.Context, sec *store.LoginSecrets, password string) {
	scram, err := HashSCRAM(password)
	if err == nil {
		_, err = a.accounts.AddSCRAM(ctx, sec.AccountID, sec.PasswordHash, scram)
	}
	if err != nil {
		a.log.Warn("could not add SCRAM keys", "account", sec.Address, "err", err)
		return
	}
	a.log.Debug("added SCRAM keys", "account", sec.Address)
}

// cacheKey is the HMAC of (lower-case address, password).
func (a *Authenticator) cacheKey(username, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(strings.ToLower(strings.TrimSpace(username))))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

func (a *Authenticator) lookupCache(key [sha256.Size]byte, hash string) (*Identity, bool) {
	if a.opts.CacheTTL < 0 {
		return nil, false
	}
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.cache[key]
	if !ok {
		return nil, false
	}
	if e.hash != hash || !now.Before(e.expires) {
		delete(a.cache, key)
		return nil, false
	}
	id := e.id
	return &id, true
}

func (a *Authenticator) storeCache(key [sha256.Size]byte, hash string, id Identity) {
	if a.opts.CacheTTL < 0 {
		return
	}
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= a.opts.CacheEntries {
		for k, e := range a.cache {
			if !now.Before(e.expires) {
				delete(a.cache, k)
			}
		}
		for k := range a.cache { // still full: drop any, a cache may forget
			if len(a.cache) < a.opts.CacheEntries {
				break
			}
			delete(a.cache, k)
		}
	}
	a.cache[key] = cacheEntry{hash: hash, id: id, expires: now.Add(a.opts.CacheTTL)}
}

// OpenSession counts a logged-in session of id from remote against
// MaxSessionsPerAccountIP. When the limit is reached it returns false;
// otherwise the caller must call release when the session ends.
func (a *Authenticator) OpenSession(id *Identity, remote netip.Addr) (release func(), ok bool) {
	k := sessionKey{account: id.AccountID, addr: addrKey(remote)}
	a.mu.Lock()
	defer a.mu.Unlock()
	if limit := a.opts.MaxSessionsPerAccountIP; limit > 0 && a.sessions[k] >= limit {
		return nil, false
	}
	a.sessions[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.sessions[k]--; a.sessions[k] <= 0 {
				delete(a.sessions, k)
			}
		})
	}, true
}

// Exchange is one SASL authentication (AUTH, AUTHENTICATE) in progress.
type Exchange struct {
	a        *Authenticator
	remote   netip.Addr
	password *PasswordExchange // PLAIN, LOGIN
	scram    *scramServer      // SCRAM-SHA-256
	claimed  *Identity         // SCRAM: the account whose keys were used; nil if made up
	proved   bool              // SCRAM: the client's proof checked out
}

// Start begins a SASL exchange for mech (one of Mechanisms, any case) with
// a client at remote; otherwise the error wraps ErrUnsupportedMechanism.
func (a *Authenticator) Start(mech string, remote netip.Addr) (*Exchange, error) {
	e := &Exchange{a: a, remote: remote}
	if strings.EqualFold(mech, SCRAMSHA256) {
		e.scram = &scramServer{}
		return e, nil
	}
	pw, err := NewPasswordExchange(mech)
	if err != nil {
		return nil, err
	}
	e.password = pw
	return e, nil
}

// Next takes the client's next response, decoded (nil when there was no
// initial response; empty but non-nil for an empty one), and returns
// either a challenge to send, or, when the client has proved who it is,
// its identity. A non-nil error ends the exchange: ErrMalformedResponse,
// ErrAuthzID, ErrFailed, ErrBlocked or a server failure, as for
// CheckPassword.
func (e *Exchange) Next(ctx context.Context, response []byte) (challenge []byte, id *Identity, err error) {
	if e.password != nil {
		challenge, creds, err := e.password.Next(response)
		if err != nil || creds == nil {
			return challenge, nil, err
		}
		id, err := e.a.CheckPassword(ctx, e.remote, creds.Username, creds.Password)
		return nil, id, err
	}
	return e.nextSCRAM(ctx, response)
}

// nextSCRAM runs RFC 5802 §5: client-first, server-first, client-final,
// server-final, then the client's empty response.
func (e *Exchange) nextSCRAM(ctx context.Context, response []byte) ([]byte, *Identity, error) {
	s := e.scram
	switch s.step {
	case 0:
		if response == nil { // no initial response: ask for client-first
			return []byte{}, nil, nil
		}
		s.step = 1
		user, err := s.readClientFirst(string(response))
		if err != nil {
			return nil, nil, err
		}
		if until, blocked := e.a.throttle.Blocked(e.remote); blocked {
			return nil, nil, &BlockedError{Until: until}
		}
		keys, claimed, err := e.a.scramKeys(ctx, user)
		if err != nil {
			return nil, nil, err
		}
		e.claimed = claimed
		nonce := make([]byte, scramNonceLen)
		rand.Read(nonce)
		return []byte(s.serverFirstMessage(keys, base64.RawURLEncoding.EncodeToString(nonce))), nil, nil
	case 1:
		s.step = 2
		final, ok, err := s.checkClientFinal(string(response))
		if err != nil {
			return nil, nil, err
		}
		if !ok || e.claimed == nil {
			reason := "wrong password (SCRAM proof)"
			if e.claimed == nil {
				reason = "no such account, or no SCRAM keys"
			}
			return nil, nil, e.a.fail(ctx, e.remote, s.username, reason)
		}
		e.proved = true
		return []byte(final), nil, nil
	case 2:
		s.step = 3
		if len(response) != 0 || !e.proved {
			return nil, nil, fmt.Errorf("%w: want an empty response after the server's signature", ErrMalformedResponse)
		}
		return nil, e.claimed, nil
	}
	return nil, nil, fmt.Errorf("%w: exchange already complete", ErrMalformedResponse)
}

// scramKeys returns the SCRAM keys of username, with the identity they
// prove. For an unknown account, or one without keys yet, it makes up keys
// that no proof matches, with a salt derived from the name so that asking
// twice gives the same answer as for a real account.
func (a *Authenticator) scramKeys(ctx context.Context, username string) (*scramKeys, *Identity, error) {
	sec, err := a.accounts.LoginSecrets(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNoAccount) {
		return nil, nil, err
	}
	if err == nil && sec.SCRAMSHA256 != "" {
		keys, perr := parseSCRAM(sec.SCRAMSHA256)
		if perr == nil {
			return keys, &Identity{AccountID: sec.AccountID, Address: sec.Address}, nil
		}
		a.log.Error("stored SCRAM keys unreadable", "account", sec.Address, "err", perr)
	}
	salt := hmacSHA256(a.key, []byte("scram-salt\x00"+strings.ToLower(strings.TrimSpace(username))))[:scramSaltLen]
	stored := make([]byte, sha256.Size)
	rand.Read(stored)
	return &scramKeys{iterations: scramIterations, salt: salt, storedKey: stored, serverKey: stored}, nil, nil
}
