package imap

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// maxIdleSessionBytes is issue 4's bound on the memory of one idle IMAP
// connection (Dovecot: some 560 KB of PSS per imap process).
const maxIdleSessionBytes = 50 << 10

// An IMAP session in IDLE costs the server less than 50 KB: live heap
// plus goroutine stacks, measured over many sessions that each logged in,
// selected INBOX and entered IDLE, as bench/loftbench imap-idle does.
func TestIdleSessionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens many sessions")
	}
	const n = 200
	ts := newTestServer(t)
	ts.deliverN(20)
	// Warm up what every session shares (the mailbox index, the hash
	// parameters), so that it is not counted per session.
	w := ts.login(false)
	w.run("s SELECT INBOX")
	before := liveBytes()
	clients := make([]*client, n)
	for i := range clients {
		c := ts.login(false)
		c.run("s" + strconv.Itoa(i) + " SELECT INBOX")
		c.cmd("i IDLE", "+ idling")
		clients[i] = c
	}
	time.Sleep(100 * time.Millisecond) // every session parked in IDLE
	after := liveBytes()
	per := (after - before) / n
	t.Logf("%d idle sessions: %d bytes each (heap and stacks)", n, per)
	if per > maxIdleSessionBytes {
		t.Errorf("an idle session costs %d bytes, over %d", per, maxIdleSessionBytes)
	}
	for _, c := range clients {
		c.cmd("DONE", "i OK IDLE completed")
	}
}

// liveBytes is the heap in use after a collection plus the goroutine
// stacks (the client side's too: about a bufio.Reader and a goroutine-free
// net.Conn per session).
func liveBytes() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}
