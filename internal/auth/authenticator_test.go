package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loft/internal/auth/authtest"
	"loft/internal/store"
)

// fakeAccounts is an in-memory Accounts.
type fakeAccounts struct {
	mu    sync.Mutex
	byKey map[string]*store.LoginSecrets
}

func (f *fakeAccounts) LoginSecrets(_ context.Context, address string) (*store.LoginSecrets, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byKey[strings.ToLower(address)]
	if !ok {
		return nil, fmt.Errorf("fake: %w", store.ErrNoAccount)
	}
	c := *s
	return &c, nil
}

func (f *fakeAccounts) AddSCRAM(_ context.Context, id int64, hash, scram string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.byKey {
		if s.AccountID == id && s.PasswordHash == hash && s.SCRAMSHA256 == "" {
			s.SCRAMSHA256 = scram
			return true, nil
		}
	}
	return false, nil
}

// add creates an account; withSCRAM also stores its SCRAM keys.
func (f *fakeAccounts) add(t testing.TB, address, password string, withSCRAM bool) {
	t.Helper()
	h, err := HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	var scram string
	if withSCRAM {
		if scram, err = HashSCRAM(password); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byKey == nil {
		f.byKey = map[string]*store.LoginSecrets{}
	}
	f.byKey[address] = &store.LoginSecrets{AccountID: int64(len(f.byKey) + 1), Address: address,
		Credentials: store.Credentials{PasswordHash: h, SCRAMSHA256: scram}}
}

// quickThrottle answers failures after 1 ms, so tests run fast.
func quickThrottle(opts ThrottleOptions) *Throttle {
	opts.FailureDelay, opts.MaxFailureDelay = time.Millisecond, time.Millisecond
	return NewThrottle(opts)
}

// countingAuthenticator counts the argon2id verifications it runs.
func countingAuthenticator(accts Accounts, opts AuthenticatorOptions) (*Authenticator, *atomic.Int64) {
	opts.Accounts = accts
	if opts.Throttle == nil {
		opts.Throttle = quickThrottle(ThrottleOptions{})
	}
	a := NewAuthenticator(opts)
	var n atomic.Int64
	a.verifyPassword = func(hash, password string) (bool, error) {
		n.Add(1)
		return VerifyPassword(hash, password)
	}
	return a, &n
}

func TestAuthenticatorCachesSuccessfulLogin(t *testing.T) {
	accts := &fakeAccounts{}
	accts.add(t, "alice@x", "right", true)
	a, hashes := countingAuthenticator(accts, AuthenticatorOptions{})
	ctx := context.Background()
	for i := range 3 {
		id, err := a.CheckPassword(ctx, ipA, "Alice@X", "right")
		if err != nil || id.Address != "alice@x" {
			t.Fatalf("login %d: %v, %v", i, id, err)
		}
	}
	if n := hashes.Load(); n != 1 {
		t.Fatalf("3 logins ran argon2id %d times, want 1", n)
	}
	// A wrong password is never answered from the cache.
	if _, err := a.CheckPassword(ctx, ipA, "alice@x", "wrong"); !errors.Is(err, ErrFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	if n := hashes.Load(); n != 2 {
		t.Fatalf("wrong password: %d hashes, want 2", n)
	}
	// The key is never the password: no cache key holds it.
	for k := range a.cache {
		if bytes.Contains(k[:], []byte("right")) {
			t.Fatal("cache key contains the password")
		}
	}
}

func TestAuthenticatorCacheInvalidatedByPasswordChange(t *testing.T) {
	accts := &fakeAccounts{}
	accts.add(t, "alice@x", "old", true)
	a, hashes := countingAuthenticator(accts, AuthenticatorOptions{})
	ctx := context.Background()
	if _, err := a.CheckPassword(ctx, ipA, "alice@x", "old"); err != nil {
		t.Fatal(err)
	}
	accts.add(t, "alice@x", "new", true) // loft account passwd, in another process
	if _, err := a.CheckPassword(ctx, ipA, "alice@x", "old"); !errors.Is(err, ErrFailed) {
		t.Fatalf("old password after a change: %v", err)
	}
	if _, err := a.CheckPassword(ctx, ipA, "alice@x", "new"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if n := hashes.Load(); n != 3 {
		t.Fatalf("%d hashes, want 3", n)
	}
}

func TestAuthenticatorCacheExpires(t *testing.T) {
	accts := &fakeAccounts{}
	accts.add(t, "alice@x", "pw", true)
	clock := &fakeClock{time.Unix(1e9, 0)}
	a, hashes := countingAuthenticator(accts, AuthenticatorOptions{Now: clock.now, CacheTTL: time.Minute})
	ctx := context.Background()
	a.CheckPassword(ctx, ipA, "alice@x", "pw")
	clock.t = clock.t.Add(59 * time.Second)
	a.CheckPassword(ctx, ipA, "alice@x", "pw")
	clock.t = clock.t.Add(2 * time.Second)
	a.CheckPassword(ctx, ipA, "alice@x", "pw")
	if n := hashes.Load(); n != 2 {
		t.Fatalf("%d hashes, want 2 (one cached, one expired)", n)
	}
}

func TestAuthenticatorCapsConcurrentHashing(t *testing.T) {
	accts := &fakeAccounts{}
	accts.add(t, "alice@x", "pw", false)
	a, _ := countingAuthenticator(accts, AuthenticatorOptions{MaxHashing: 2, CacheTTL: -1})
	var now, peak atomic.Int64
	a.verifyPassword = func(hash, password string) (bool, error) {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		now.Add(-1)
		return true, nil
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { a.CheckPassword(context.Background(), ipA, "alice@x", "pw") })
	}
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrent hashing %d, want 2", p)
	}
}

// TestAuthenticatorUnknownUserLooksLikeWrongPassword: same error, same
// work (one argon2id run against a hash of today's parameters), same wait.
func TestAuthenticatorUnknownUserLooksLikeWrongPassword(t *testing.T) {
	accts := &fakeAccounts{}
	accts.add(t, "alice@x", "right", false)
	a, hashes := countingAuthenticator(accts, AuthenticatorOptions{})
	ctx := context.Background()
	timeOf := func(user string) time.Duration {
		start := time.Now()
		_, err := a.CheckPassword(ctx, netip.AddrFrom4([4]byte{10, 0, 0, byte(hashes.Load())}), user, "guess")
		var fe *FailedError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFailed) {
			t.Fatalf("%s: %v", user, err)
		}
		return time.Since(start)
	}
	var unknown, wrong time.Duration
	for i := range 6 {
		before := hashes.Load()
		wrong += timeOf("alice@x")
		unknown += timeOf(fmt.Sprintf("nobody%d@x", i))
		if hashes.Load()-before != 2 {
			t.Fatalf("round %d: %d hashes for one wrong password and one unknown user, want 2", i, hashes.Load()-before)
		}
	}
	if ratio := float64(unknown) / float64(wrong); ratio < 0.5 || ratio > 2 {
		t.Errorf("unknown user took %v, wrong password %v: a timing oracle", unknown, wrong)
	}
	if !strings.HasPrefix(a.dummyHash(), "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("dummy hash %q is not of today's parameters", a.dummyHash())
	}
}

func TestAuthenticatorBlockedAddress(t *testing.T) {
	accts := &fakeAccounts{}
	accts.add(t, "alice@x", "right", true)
	var logs bytes.Buffer
	th := quickThrottle(ThrottleOptions{BlockAfter: 5, BlockFor: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	a, hashes := countingAuthenticator(accts, AuthenticatorOptions{Throttle: th})
	ctx := context.Background()
	for range 5 {
		a.CheckPassword(ctx, ipA, "alice@x", "wrong")
	}
	n := hashes.Load()
	// Even the right password is refused now, without hashing.
	_, err := a.CheckPassword(ctx, ipA, "alice@x", "right")
	var be *BlockedError
	if !errors.As(err, &be) || !errors.Is(err, ErrBlocked) || time.Until(be.Until) < 59*time.Minute {
		t.Fatalf("blocked address: %v", err)
	}
	if hashes.Load() != n {
		t.Error("a blocked address made the server hash")
	}
	// Another address is not concerned.
	if _, err := a.CheckPassword(ctx, ipB, "alice@x", "right"); err != nil {
		t.Fatalf("other address: %v", err)
	}
	// SCRAM is refused at its first message too.
	ex, _ := a.Start("SCRAM-SHA-256", ipA)
	if _, _, err := ex.Next(ctx, []byte(authtest.NewSCRAMClient("alice@x", "right", "").First())); !errors.Is(err, ErrBlocked) {
		t.Fatalf("SCRAM from a blocked address: %v", err)
	}
	if c := strings.Count(logs.String(), "address blocked"); c != 1 {
		t.Fatalf("block logged %d times:\n%s", c, logs.String())
	}
}

// scramLogin runs a whole SCRAM-SHA-256 exchange through the
// Authenticator, as a protocol would.
func scramLogin(a *Authenticator, remote netip.Addr, user, password string) (*Identity, error) {
	ctx := context.Background()
	ex, err := a.Start("scram-sha-256", remote)
	if err != nil {
		return nil, err
	}
	c := authtest.NewSCRAMClient(user, password, "")
	ch, _, err := ex.Next(ctx, nil)
	if err != nil || len(ch) != 0 {
		return nil, fmt.Errorf("first challenge %q, %v", ch, err)
	}
	serverFirst, _, err := ex.Next(ctx, []byte(c.First()))
	if err != nil {
		return nil, err
	}
	final, err := c.Final(string(serverFirst))
	if err != nil {
		return nil, err
	}
	serverFinal, _, err := ex.Next(ctx, []byte(final))
	if err != nil {
		return nil, err
	}
	if err := c.Verify(string(serverFinal)); err != nil {
		return nil, err
	}
	_, id, err := ex.Next(ctx, []byte{})
	return id, err
}

func TestAuthenticatorSCRAM(t *testing.T) {
	accts := &fakeAccounts{}
	accts.add(t, "alice@x", "right", true)
	accts.add(t, "old@x", "pw", false) // created before SCRAM keys were kept
	a, hashes := countingAuthenticator(accts, AuthenticatorOptions{})
	id, err := scramLogin(a, ipA, "Alice@X", "right")
	if err != nil || id == nil || id.Address != "alice@x" {
		t.Fatalf("SCRAM login: %v, %v", id, err)
	}
	if hashes.Load() != 0 {
		t.Error("SCRAM ran argon2id")
	}
	if _, err := scramLogin(a, ipA, "alice@x", "wrong"); !errors.Is(err, ErrFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := scramLogin(a, ipA, "nobody@x", "pw"); !errors.Is(err, ErrFailed) {
		t.Fatalf("unknown user: %v", err)
	}
	// The unknown user's salt is stable, as a real one would be.
	salt := func(user string) string {
		ex, _ := a.Start(SCRAMSHA256, ipB)
		first, _, _ := ex.Next(context.Background(), []byte("n,,n="+user+",r=abc"))
		_, rest, _ := strings.Cut(string(first), ",s=")
		return rest
	}
	if s1, s2 := salt("nobody@x"), salt("NOBODY@x"); s1 != s2 || s1 == salt("other@x") {
		t.Errorf("made-up salts %q, %q", s1, s2)
	}
	// An account without keys gets them at its next password login.
	if _, err := scramLogin(a, ipA, "old@x", "pw"); !errors.Is(err, ErrFailed) {
		t.Fatalf("SCRAM without keys: %v", err)
	}
	if _, err := a.CheckPassword(context.Background(), ipA, "old@x", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := scramLogin(a, ipA, "old@x", "pw"); err != nil {
		t.Fatalf("SCRAM after a password login filled the keys in: %v", err)
	}
}

func TestAuthenticatorPlainAndLoginExchanges(t *testing.T) {
	accts := &fakeAccounts{}
	accts.add(t, "alice@x", "right", false)
	a, _ := countingAuthenticator(accts, AuthenticatorOptions{})
	ctx := context.Background()
	ex, _ := a.Start("PLAIN", ipA)
	if _, id, err := ex.Next(ctx, []byte("\x00alice@x\x00right")); err != nil || id == nil {
		t.Fatalf("PLAIN: %v, %v", id, err)
	}
	ex, _ = a.Start("LOGIN", ipA)
	ex.Next(ctx, nil)
	ex.Next(ctx, []byte("alice@x"))
	if _, id, err := ex.Next(ctx, []byte("wrong")); !errors.Is(err, ErrFailed) || id != nil {
		t.Fatalf("LOGIN wrong: %v, %v", id, err)
	}
	if _, err := a.Start("CRAM-MD5", ipA); !errors.Is(err, ErrUnsupportedMechanism) {
		t.Fatalf("CRAM-MD5: %v", err)
	}
}

func TestAuthenticatorSessionsPerAccountAndAddress(t *testing.T) {
	a := NewAuthenticator(AuthenticatorOptions{Accounts: &fakeAccounts{}, MaxSessionsPerAccountIP: 2})
	alice, bob := &Identity{AccountID: 1}, &Identity{AccountID: 2}
	r1, ok1 := a.OpenSession(alice, ipA)
	_, ok2 := a.OpenSession(alice, ipA)
	if _, ok := a.OpenSession(alice, ipA); !ok1 || !ok2 || ok {
		t.Fatalf("third session of one account from one address allowed (%v %v %v)", ok1, ok2, ok)
	}
	if _, ok := a.OpenSession(alice, ipB); !ok {
		t.Fatal("another address refused")
	}
	if _, ok := a.OpenSession(bob, ipA); !ok {
		t.Fatal("another account refused")
	}
	r1()
	r1() // twice is harmless
	if _, ok := a.OpenSession(alice, ipA); !ok {
		t.Fatal("released session still counted")
	}
	if _, ok := a.OpenSession(alice, ipA); ok {
		t.Fatal("double release freed two places")
	}
}

// TestAuthenticatorReleasesHashMemoryAfterBurst: once a burst of argon2id
// computations is over (none for ReleaseAfter), their memory goes back to
// the kernel, once for the burst; never while one still runs.
func TestAuthenticatorReleasesHashMemoryAfterBurst(t *testing.T) {
	accts := &fakeAccounts{}
	accts.add(t, "alice@x", "pw", false)
	const after = 100 * time.Millisecond
	a, _ := countingAuthenticator(accts, AuthenticatorOptions{MaxHashing: 2, CacheTTL: -1, ReleaseAfter: after})
	var running atomic.Int64
	var lastEnd atomic.Int64 // unix nanoseconds
	a.verifyPassword = func(hash, password string) (bool, error) {
		running.Add(1)
		time.Sleep(10 * time.Millisecond)
		running.Add(-1)
		lastEnd.Store(time.Now().UnixNano())
		return true, nil
	}
	released := make(chan time.Time, 10)
	a.freeOSMemory = func() {
		if running.Load() != 0 {
			t.Error("memory released while a hash runs")
		}
		released <- time.Now()
	}
	for round := range 2 {
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() { a.CheckPassword(context.Background(), ipA, "alice@x", "pw") })
		}
		wg.Wait()
		select {
		case at := <-released:
			if gap := at.Sub(time.Unix(0, lastEnd.Load())); gap < after {
				t.Errorf("round %d: released %v after the last hash, want at least %v", round, gap, after)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: memory not released", round)
		}
		select {
		case <-released:
			t.Fatalf("round %d: released twice for one burst", round)
		case <-time.After(3 * after):
		}
	}
}
