// Connections: a listener wrapper that counts each connection's bytes at
// the socket, below TLS and compression, for the session's log line and
// for the connection and byte series.
//
// Counting at the socket is what lets a protocol swap its connection in
// the middle of a session (STARTTLS, STLS, COMPRESS) and still report
// every byte: whatever it stacks on top, Traffic finds the counter
// underneath.

package metrics

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Listener wraps l so that every connection it accepts is a *Conn that
// counts its bytes. With m non-nil, the connection also counts in the
// connection and byte series under the label listener (the config key:
// "imap", "imaps", …); a nil m counts bytes for the log alone.
func (m *Metrics) Listener(listener string, l net.Listener) net.Listener {
	cl := &countingListener{Listener: l}
	if m != nil {
		cl.series = &listenerSeries{
			open:  m.connsOpen.WithLabelValues(listener),
			total: m.connsTotal.WithLabelValues(listener),
			in:    m.bytesIn.WithLabelValues(listener),
			out:   m.bytesOut.WithLabelValues(listener),
		}
	}
	return cl
}

// RefusalReasons are the reason labels of loft_connections_refused_total.
var RefusalReasons = []string{"per_ip", "total", "blocked"}

// Refused returns what a listener calls for each connection it refuses,
// with one of RefusalReasons. Its series start at 0, so that a scrape
// shows them before the first refusal. On a nil Metrics it does nothing.
func (m *Metrics) Refused(listener string) func(reason string) {
	if m == nil {
		return func(string) {}
	}
	for _, r := range RefusalReasons {
		m.refused.WithLabelValues(listener, r)
	}
	return func(reason string) { m.refused.WithLabelValues(listener, reason).Inc() }
}

// listenerSeries are one listener's series.
type listenerSeries struct {
	open    prometheus.Gauge
	total   prometheus.Counter
	in, out prometheus.Counter
}

type countingListener struct {
	net.Listener
	series *listenerSeries // nil: count bytes only
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.series != nil {
		l.series.total.Inc()
		l.series.open.Inc()
	}
	return &Conn{Conn: c, series: l.series}, nil
}

// Conn is a connection that counts the bytes read from and written to it.
type Conn struct {
	net.Conn
	series *listenerSeries

	in, out atomic.Int64
	once    sync.Once
}

// NewConn wraps c to count its bytes, outside any listener (tests, and a
// protocol server served on a listener that is not wrapped).
func NewConn(c net.Conn) *Conn { return &Conn{Conn: c} }

func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.in.Add(int64(n))
		if c.series != nil {
			c.series.in.Add(float64(n))
		}
	}
	return n, err
}

func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.out.Add(int64(n))
		if c.series != nil {
			c.series.out.Add(float64(n))
		}
	}
	return n, err
}

// Close closes the connection; the open-connections gauge drops once,
// however many times it is called (a TLS connection and its session may
// both close it).
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.series != nil {
			c.series.open.Dec()
		}
	})
	return err
}

// NetConn returns the connection underneath, as tls.Conn's does.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Bytes are the bytes read from and written to the connection so far.
func (c *Conn) Bytes() (in, out int64) { return c.in.Load(), c.out.Load() }

// Traffic returns the bytes read and written so far on the socket under
// c: it looks through connections that expose the one they wrap with a
// NetConn method (*tls.Conn does) down to a *Conn. Without one, it
// returns zeros.
func Traffic(c net.Conn) (in, out int64) {
	// The bound stops a wrapper that returns itself from looping.
	for range maxWrappers {
		switch x := c.(type) {
		case *Conn:
			return x.Bytes()
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return 0, 0
		}
	}
	return 0, 0
}

// maxWrappers is deeper than any stack of connections Loft builds (TLS
// over the SMTP guard over the counter).
const maxWrappers = 8
