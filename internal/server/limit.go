// Connection limits, applied once for every protocol as a wrapper around
// each listener: at most limits.max_connections open connections in all,
// and limits.max_connections_per_ip from one address (an IPv4 address, or
// an IPv6 /64, which one party usually holds whole). A connection over a
// limit, or from an address blocked after too many failed logins, gets
// one line in its protocol's words and is closed, before the protocol
// server sees it:
//
//	SMTP/LMTP  421 4.7.0 <hostname> Too many connections from your address; try again later
//	POP3       -ERR [SYS/TEMP] Too many connections from your address; try again later
//	IMAP       * BYE [UNAVAILABLE] Too many connections from your address; try again later
//
// On implicit-TLS listeners (pop3s, imaps) the connection is closed
// without a word: a line in the clear would be garbage to a client
// expecting a TLS handshake, and completing a handshake first would spend
// on every refused connection the CPU the limits are there to save.
// Clients report a failed connection and retry later, which is the point.
//
// Blocked addresses are refused on the POP3 and IMAP listeners only: SMTP
// and LMTP take no passwords (MX mail must keep flowing from any address).

package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// refusalLogEvery bounds how often a listener logs that it refuses
// connections: under a flood, one line per interval, not one per
// connection.
const refusalLogEvery = 10 * time.Second

// refusalWriteTimeout bounds writing the refusal line; a new connection's
// socket buffer takes it at once unless something is very wrong.
const refusalWriteTimeout = time.Second

// connLimits counts the open connections of all listeners.
type connLimits struct {
	maxTotal, maxPerIP int

	mu    sync.Mutex
	total int
	perIP map[netip.Prefix]int
}

func newConnLimits(maxTotal, maxPerIP int) *connLimits {
	return &connLimits{maxTotal: maxTotal, maxPerIP: maxPerIP, perIP: make(map[netip.Prefix]int)}
}

// acquire counts a new connection from addr, unless a limit is reached;
// then it says which.
func (l *connLimits) acquire(addr netip.Prefix) (ok bool, perIP bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[addr] >= l.maxPerIP {
		return false, true
	}
	if l.total >= l.maxTotal {
		return false, false
	}
	l.total++
	l.perIP[addr]++
	return true, false
}

func (l *connLimits) release(addr netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[addr]--; l.perIP[addr] <= 0 {
		delete(l.perIP, addr)
	}
}

// refusal is what a listener says when it refuses a connection: a
// protocol's line with "%s" for the reason, or nothing (implicit TLS).
type refusal struct {
	format string // e.g. "-ERR [SYS/TEMP] %s\r\n"; "" to close silently
}

// Refusals by protocol.
func smtpRefusal(hostname string) refusal {
	return refusal{"421 4.7.0 " + hostname + " %s\r\n"} // RFC 5321 §3.8, RFC 3463 4.7.0
}

var (
	pop3Refusal   = refusal{"-ERR [SYS/TEMP] %s\r\n"}     // RFC 3206 §4
	imapRefusal   = refusal{"* BYE [UNAVAILABLE] %s\r\n"} // RFC 9051 §7.1
	silentRefusal = refusal{}                             // implicit TLS
	reasonPerIP   = "Too many connections from your address; try again later"
	reasonTotal   = "Too many connections; try again later"
	reasonBlocked = "Too many failed logins from your address; try again later"
)

// limitedListener applies the limits to one listener's connections.
type limitedListener struct {
	net.Listener
	name    string
	limits  *connLimits
	refuse  refusal
	blocked func(netip.Addr) (time.Time, bool) // nil: do not check
	counted func(reason string)                // counts a refusal (metrics.Metrics.Refused)
	log     *slog.Logger

	logMu   sync.Mutex
	lastLog time.Time
	refused int // since lastLog
}

// Accept returns the next connection within the limits, refusing (and
// closing) those over them on the way.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if l.blocked != nil {
			if _, blocked := l.blocked(ip); blocked {
				l.reject(c, ip, reasonBlocked, "blocked")
				continue
			}
		}
		key := ipKey(ip)
		ok, perIP := l.limits.acquire(key)
		if !ok {
			reason, label := reasonTotal, "total"
			if perIP {
				reason, label = reasonPerIP, "per_ip"
			}
			l.reject(c, ip, reason, label)
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.limits.release(key) }}, nil
	}
}

// reject answers and closes a refused connection, counts it under label,
// and logs (at most once per refusalLogEvery).
func (l *limitedListener) reject(c net.Conn, ip netip.Addr, reason, label string) {
	if l.counted != nil {
		l.counted(label)
	}
	if l.refuse.format != "" {
		c.SetWriteDeadline(time.Now().Add(refusalWriteTimeout))
		fmt.Fprintf(c, l.refuse.format, reason)
	}
	c.Close()
	l.logMu.Lock()
	defer l.logMu.Unlock()
	l.refused++
	if now := time.Now(); now.Sub(l.lastLog) >= refusalLogEvery {
		l.log.Warn("connection refused", "listener", l.name, "ip", ip.String(), "reason", reason,
			"refused_since_last_log", l.refused)
		l.lastLog, l.refused = now, 0
	}
}

// limitedConn releases its place in the limits when closed (once, however
// many times Close is called: a TLS connection and the session both may).
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// remoteIP is a connection's peer address, IPv4-mapped ones unmapped.
func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// ipKey groups addresses as the throttle does: an IPv4 address, or an IPv6
// /64.
func ipKey(ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}
