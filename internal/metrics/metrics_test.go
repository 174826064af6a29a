package metrics

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"loft/internal/certs"
)

func TestNilMetricsDoNothing(t *testing.T) {
	var m *Metrics
	p := m.Protocol(ProtocolSpec{Name: "imap", Commands: []string{"NOOP"}})
	if p != nil {
		t.Fatal("nil Metrics gave a Protocol")
	}
	p.Command("NOOP", time.Now())
	p.AuthFailed("PLAIN")
	p.Delivery(Accepted, 1)
	m.ObserveCommit(time.Millisecond)
	l := m.Listener("imap", nil)
	if l == nil {
		t.Fatal("nil Metrics gave no listener")
	}
}

func TestUnknownNamesCountAsOther(t *testing.T) {
	m := New(Options{})
	p := m.Protocol(ProtocolSpec{Name: "pop3", Commands: []string{"STAT", "RETR"}, Mechanisms: []string{"USER", "PLAIN"}})
	p.Command("STAT", time.Now())
	p.Command("XYZZY", time.Now())
	p.Command("FOO", time.Now())
	p.AuthFailed("USER")
	p.AuthFailed("CRAM-MD5")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"stat", []string{"pop3", "STAT"}, 1},
		{"retr untouched", []string{"pop3", "RETR"}, 0},
		{"other", []string{"pop3", Other}, 2},
	} {
		if got := testutil.ToFloat64(m.commands.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("%s: loft_commands_total%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.authFailed.WithLabelValues("pop3", "USER")); got != 1 {
		t.Errorf("USER failures %v", got)
	}
	if got := testutil.ToFloat64(m.authFailed.WithLabelValues("pop3", Other)); got != 1 {
		t.Errorf("other mechanism failures %v", got)
	}
	// Only the known names and "other" exist as series: 3 of
	// loft_commands_total for pop3, however many names clients send.
	if n := testutil.CollectAndCount(m.commands); n != 3 {
		t.Errorf("%d command series, want 3", n)
	}
}

func TestUsageCollectedOnScrape(t *testing.T) {
	calls := 0
	m := New(Options{Usage: func(context.Context) (Usage, error) {
		calls++
		return Usage{Accounts: 2, Messages: 5, Bytes: 12345}, nil
	}})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"loft_accounts 2\n", "loft_quota_messages 5\n", "loft_quota_used_bytes 12345\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if calls != 1 {
		t.Errorf("usage asked %d times for one scrape", calls)
	}
}

func TestUsageErrorFailsTheScrape(t *testing.T) {
	m := New(Options{Usage: func(context.Context) (Usage, error) {
		return Usage{}, errors.New("database is locked")
	}})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "database is locked") {
		t.Errorf("scrape with a failing store: %d %q", rec.Code, rec.Body.String())
	}
}

// TestTrafficCountedBeneathTLS: the bytes a session reports are the
// socket's, whatever it stacked on top (here TLS, as after STARTTLS).
func TestTrafficCountedBeneathTLS(t *testing.T) {
	m := New(Options{})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := m.Listener("imaps", raw)
	defer l.Close()
	h, err := certs.New(certs.Options{DataDir: t.TempDir(), Hostname: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	served := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(served)
			return
		}
		tc := tls.Server(c, h.TLSConfig())
		io.WriteString(tc, "hello\r\n")
		served <- tc
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	sc := <-served
	in, out := Traffic(sc)
	// The handshake alone is hundreds of bytes each way; the 7 bytes of
	// text are far fewer.
	if in < 100 || out < 100 {
		t.Errorf("Traffic beneath TLS = %d in, %d out", in, out)
	}
	if got := testutil.ToFloat64(m.connsOpen.WithLabelValues("imaps")); got != 1 {
		t.Errorf("open connections %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.bytesOut.WithLabelValues("imaps")); got != float64(out) {
		t.Errorf("sent bytes series %v, conn says %d", got, out)
	}
	sc.Close()
	sc.Close()
	c.Close()
	if got := testutil.ToFloat64(m.connsOpen.WithLabelValues("imaps")); got != 0 {
		t.Errorf("open connections after a double close %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.connsTotal.WithLabelValues("imaps")); got != 1 {
		t.Errorf("total connections %v, want 1", got)
	}
	if in, out := Traffic(&net.TCPConn{}); in != 0 || out != 0 {
		t.Errorf("Traffic of an uncounted conn %d, %d", in, out)
	}
}
