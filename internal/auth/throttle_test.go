package auth

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeClock is a settable Now for Throttle tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestThrottle(c *fakeClock, maxTracked int) *Throttle {
	return NewThrottle(ThrottleOptions{
		FailureDelay:    100 * time.Millisecond,
		MaxFailureDelay: time.Second,
		ForgetAfter:     time.Minute,
		MaxTracked:      maxTracked,
		Now:             c.now,
	})
}

var (
	ipA = netip.MustParseAddr("192.0.2.1")
	ipB = netip.MustParseAddr("198.51.100.2")
)

func TestThrottleDelayDoublesPerFailureUpToMax(t *testing.T) {
	c := &fakeClock{time.Unix(1e9, 0)}
	th := newTestThrottle(c, 0)
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := th.Failed(ipA, "alice@example.org"); got != w*time.Millisecond {
			t.Fatalf("failure %d: delay %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
}

func TestThrottleKeysOnAddressAndOnAccount(t *testing.T) {
	c := &fakeClock{time.Unix(1e9, 0)}
	th := newTestThrottle(c, 0)
	// One address trying many accounts.
	for _, acct := range []string{"a@x", "b@x", "c@x"} {
		th.Failed(ipA, acct)
	}
	if got := th.Failed(ipA, "d@x"); got != 800*time.Millisecond {
		t.Fatalf("4th failure from one address: %v", got)
	}
	// Many addresses trying one account (any case).
	for i := range 3 {
		th.Failed(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), "Victim@X")
	}
	if got := th.Failed(ipB, "victim@x"); got != 800*time.Millisecond {
		t.Fatalf("4th failure on one account: %v", got)
	}
	// A fresh address and account start from the beginning.
	if got := th.Failed(netip.MustParseAddr("192.0.2.99"), "new@x"); got != 100*time.Millisecond {
		t.Fatalf("unrelated failure: %v", got)
	}
	if a, b := th.Failures(ipA, "victim@x"); a != 4 || b != 4 {
		t.Fatalf("Failures = %d, %d; want 4, 4", a, b)
	}
}

func TestThrottleIPv6CountsPer64(t *testing.T) {
	c := &fakeClock{time.Unix(1e9, 0)}
	th := newTestThrottle(c, 0)
	th.Failed(netip.MustParseAddr("2001:db8:1:2::1"), "")
	th.Failed(netip.MustParseAddr("2001:db8:1:2:ffff::9"), "")
	if got := th.Failed(netip.MustParseAddr("2001:db8:1:2::abcd"), ""); got != 400*time.Millisecond {
		t.Fatalf("3rd failure in one /64: %v", got)
	}
	if got := th.Failed(netip.MustParseAddr("2001:db8:1:3::1"), ""); got != 100*time.Millisecond {
		t.Fatalf("another /64: %v", got)
	}
	// IPv4-mapped addresses count as IPv4.
	th.Failed(netip.MustParseAddr("::ffff:192.0.2.1"), "")
	if a, _ := th.Failures(ipA, ""); a != 1 {
		t.Fatalf("mapped address not counted as IPv4: %d", a)
	}
}

func TestThrottleForgetsOldFailures(t *testing.T) {
	c := &fakeClock{time.Unix(1e9, 0)}
	th := newTestThrottle(c, 0)
	for range 5 {
		th.Failed(ipA, "alice@x")
	}
	c.t = c.t.Add(time.Minute)
	if got := th.Failed(ipA, "alice@x"); got != 100*time.Millisecond {
		t.Fatalf("after ForgetAfter: %v", got)
	}
}

func TestThrottleMemoryIsBounded(t *testing.T) {
	c := &fakeClock{time.Unix(1e9, 0)}
	th := newTestThrottle(c, 10)
	for i := range 1000 {
		th.Failed(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), "")
		c.t = c.t.Add(time.Millisecond)
	}
	if n := len(th.addrs); n > 10 {
		t.Fatalf("%d addresses tracked, limit 10", n)
	}
}

func TestThrottleDefaults(t *testing.T) {
	th := NewThrottle(ThrottleOptions{})
	if got := th.Failed(ipA, "x"); got != DefaultFailureDelay {
		t.Fatalf("first failure with defaults: %v", got)
	}
}

func TestThrottleBlocksAddressAfterThresholdAndLogsOnce(t *testing.T) {
	c := &fakeClock{time.Unix(1e9, 0)}
	var logs bytes.Buffer
	th := NewThrottle(ThrottleOptions{
		FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond, ForgetAfter: time.Minute,
		BlockAfter: 20, BlockFor: 10 * time.Minute, Now: c.now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	for i := range 19 {
		th.Failed(ipA, fmt.Sprintf("user%d@x", i))
	}
	if _, blocked := th.Blocked(ipA); blocked {
		t.Fatal("blocked after 19 failures, threshold 20")
	}
	th.Failed(ipA, "user19@x")
	until, blocked := th.Blocked(ipA)
	if !blocked || !until.Equal(c.t.Add(10*time.Minute)) {
		t.Fatalf("after 20 failures: blocked %v until %v", blocked, until)
	}
	th.Failed(ipA, "more@x") // still failing while blocked: not logged again
	// Other addresses, and the accounts tried, are not blocked.
	if _, blocked := th.Blocked(ipB); blocked {
		t.Fatal("another address blocked")
	}
	if got := th.Failed(ipB, "fresh@x"); got != time.Millisecond {
		t.Fatalf("another address delayed %v", got)
	}
	line := logs.String()
	if strings.Count(line, "address blocked") != 1 || !strings.Contains(line, "ip=192.0.2.1 ") {
		t.Fatalf("log, want one fail2ban-friendly line with ip=:\n%s", line)
	}
	// The block ends; forgotten failures start from nothing.
	c.t = c.t.Add(10 * time.Minute)
	if _, blocked := th.Blocked(ipA); blocked {
		t.Fatal("still blocked after BlockFor")
	}
	th.Failed(ipA, "x@x")
	if a, _ := th.Failures(ipA, ""); a != 1 {
		t.Fatalf("after the block: %d failures counted, want 1", a)
	}
}

func TestThrottleWithoutBlockAfterNeverBlocks(t *testing.T) {
	th := NewThrottle(ThrottleOptions{FailureDelay: time.Millisecond})
	for range 100 {
		th.Failed(ipA, "a@x")
	}
	if _, blocked := th.Blocked(ipA); blocked {
		t.Fatal("blocked with BlockAfter 0")
	}
}
