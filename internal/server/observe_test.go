package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"loft/internal/auth"
	"loft/internal/config"
)

// Passwords and a line of the message body: none may appear in the logs.
const (
	alicePassword = "correct-horse-battery"
	wrongPassword = "wrong-staple-guess"
	bodySecret    = "the body says the vault code is 4242"
)

// syncBuffer is a log destination that sessions on many goroutines write
// to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logLines parses the JSON log lines written so far.
func (b *syncBuffer) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// find returns the log lines with message msg and the given attributes.
func find(lines []map[string]any, msg string, attrs map[string]any) []map[string]any {
	var out []map[string]any
next:
	for _, l := range lines {
		if l["msg"] != msg {
			continue
		}
		for k, v := range attrs {
			if fmt.Sprint(l[k]) != fmt.Sprint(v) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// conv is a line-based client conversation with one of the listeners.
type conv struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialConv(t *testing.T, addr string) *conv {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &conv{t: t, c: c, r: bufio.NewReader(c)}
}

// send writes a line (CRLF added).
func (c *conv) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads lines until one starts with prefix, and fails on EOF.
func (c *conv) expect(prefix string) string {
	c.t.Helper()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("waiting for %q: %v", prefix, err)
		}
		if strings.HasPrefix(line, prefix) {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

// expectClosed reads to the end of the connection.
func (c *conv) expectClosed() {
	c.t.Helper()
	io.Copy(io.Discard, c.r)
}

// scrape fetches the metrics page.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v\n%s", resp.StatusCode, err, b)
	}
	return string(b)
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelPair = regexp.MustCompile(`(\w+)="([^"]*)"`)

// sample returns the value of the series name with exactly labels
// ("k=v,k=v", any order; "" for none) on a metrics page, or -1 if the
// page has no such series.
func sample(page, name, labels string) float64 {
	want := map[string]string{}
	if labels != "" {
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			want[k] = v
		}
	}
next:
	for _, line := range strings.Split(page, "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		got := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			got[p[1]] = p[2]
		}
		if len(got) != len(want) {
			continue
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		f, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return -1
		}
		return f
	}
	return -1
}

// observedServer starts a server with metrics on and its log in JSON into
// the returned buffer, with alice@localhost (alicePassword) and
// tiny@localhost, whose quota no message fits.
func observedServer(t *testing.T) (*Server, map[string]string, *syncBuffer) {
	t.Helper()
	cfg := testConfig(t, func(c *config.Config) { c.Listen.Metrics = "127.0.0.1:0" })
	logs := &syncBuffer{}
	srv, err := Start(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	addrs := map[string]string{}
	for _, l := range srv.Listeners() {
		addrs[l.Name] = l.Addr.String()
	}
	hash, err := auth.HashPassword(alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := srv.Store.CreateAccount(ctx, "alice@localhost", hash, nil); err != nil {
		t.Fatal(err)
	}
	tiny := int64(10)
	if _, err := srv.Store.CreateAccount(ctx, "tiny@localhost", hash, &tiny); err != nil {
		t.Fatal(err)
	}
	return srv, addrs, logs
}

// trafficOfEveryProtocol drives, in turn: an SMTP delivery with an
// unknown and a foreign recipient, an LMTP delivery with an over-quota
// recipient, an IMAP session with a failed and a good login, and a POP3
// session with a failed and a good login.
func trafficOfEveryProtocol(t *testing.T, addrs map[string]string) {
	message := func(id string) string {
		return "From: bob@example.org\r\nTo: alice@localhost\r\nSubject: hello\r\nMessage-ID: <" + id +
			"@example.org>\r\n\r\n" + bodySecret + "\r\n."
	}

	s := dialConv(t, addrs["smtp"])
	s.expect("220 ")
	s.send("EHLO client.example.org")
	s.expect("250 ")
	s.send("MAIL FROM:<bob@example.org>")
	s.expect("250 ")
	s.send("RCPT TO:<alice@localhost>")
	s.expect("250 ")
	s.send("RCPT TO:<nobody@localhost>")
	s.expect("550 5.1.1")
	s.send("RCPT TO:<someone@elsewhere.example>")
	s.expect("554 5.7.1")
	s.send("DATA")
	s.expect("354 ")
	s.send(message("smtp-1"))
	s.expect("250 ")
	s.send("QUIT")
	s.expect("221 ")
	s.expectClosed()

	l := dialConv(t, addrs["lmtp"])
	l.expect("220 ")
	l.send("LHLO mta.localhost")
	l.expect("250 ")
	l.send("MAIL FROM:<bob@example.org>")
	l.expect("250 ")
	l.send("RCPT TO:<alice@localhost>")
	l.expect("250 ")
	l.send("RCPT TO:<tiny@localhost>")
	l.expect("250 ")
	l.send("DATA")
	l.expect("354 ")
	l.send(message("lmtp-1"))
	l.expect("250 ")      // alice
	l.expect("552 5.2.2") // tiny: over quota
	l.send("QUIT")
	l.expect("221 ")
	l.expectClosed()

	i := dialConv(t, addrs["imap"])
	i.expect("* OK")
	i.send("a1 LOGIN alice@localhost " + wrongPassword)
	i.expect("a1 NO [AUTHENTICATIONFAILED]")
	i.send("a2 LOGIN alice@localhost " + alicePassword)
	i.expect("a2 OK")
	i.send("a3 SELECT INBOX")
	i.expect("a3 OK")
	i.send("a4 FETCH 1:* (FLAGS RFC822.SIZE)")
	i.expect("a4 OK")
	i.send("a5 XYZZY")
	i.expect("a5 BAD")
	i.send("a6 LOGOUT")
	i.expect("a6 OK")
	i.expectClosed()

	p := dialConv(t, addrs["pop3"])
	p.expect("+OK")
	p.send("USER alice@localhost")
	p.expect("+OK")
	p.send("PASS " + wrongPassword)
	p.expect("-ERR [AUTH]")
	p.send("USER alice@localhost")
	p.expect("+OK")
	p.send("PASS " + alicePassword)
	p.expect("+OK")
	p.send("STAT")
	p.expect("+OK 2 ")
	p.send("RETR 1")
	p.expect(".\r")
	p.send("QUIT")
	p.expect("+OK")
	p.expectClosed()
}

// TestMetricsMoveWithTraffic: the metrics endpoint serves the named series,
// and each moves when its kind of traffic flows.
func TestMetricsMoveWithTraffic(t *testing.T) {
	srv, addrs, _ := observedServer(t)
	before := scrape(t, addrs["metrics"])
	if v := sample(before, "loft_commands_total", "proto=imap,command=FETCH"); v != 0 {
		t.Fatalf("before any traffic, FETCH count = %v, want a series at 0", v)
	}
	trafficOfEveryProtocol(t, addrs)

	// Sessions are counted out as they end, just after the client sees
	// the connection close.
	var page string
	deadline := time.Now().Add(5 * time.Second)
	for {
		page = scrape(t, addrs["metrics"])
		if sample(page, "loft_connections_open", "listener=pop3") == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	totals, err := srv.Store.Totals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, labels string
		want         float64 // -2: any value above 0
	}{
		{"loft_connections_total", "listener=smtp", 1},
		{"loft_connections_total", "listener=lmtp", 1},
		{"loft_connections_total", "listener=imap", 1},
		{"loft_connections_total", "listener=pop3", 1},
		{"loft_connections_open", "listener=smtp", 0},
		{"loft_connections_open", "listener=imap", 0},
		{"loft_connections_open", "listener=pop3", 0},
		{"loft_received_bytes_total", "listener=smtp", -2},
		{"loft_sent_bytes_total", "listener=imap", -2},
		{"loft_commands_total", "proto=smtp,command=EHLO", 1},
		{"loft_commands_total", "proto=smtp,command=MAIL", 1},
		{"loft_commands_total", "proto=smtp,command=RCPT", 3},
		{"loft_commands_total", "proto=smtp,command=DATA", 1},
		{"loft_commands_total", "proto=lmtp,command=LHLO", 1},
		{"loft_commands_total", "proto=lmtp,command=DATA", 1},
		{"loft_commands_total", "proto=imap,command=LOGIN", 2},
		{"loft_commands_total", "proto=imap,command=SELECT", 1},
		{"loft_commands_total", "proto=imap,command=FETCH", 1},
		{"loft_commands_total", "proto=imap,command=LOGOUT", 1},
		{"loft_commands_total", "proto=imap,command=other", 1}, // XYZZY
		{"loft_commands_total", "proto=pop3,command=PASS", 2},
		{"loft_commands_total", "proto=pop3,command=RETR", 1},
		{"loft_command_duration_seconds_count", "proto=imap,command=FETCH", 1},
		{"loft_command_duration_seconds_count", "proto=pop3,command=RETR", 1},
		{"loft_command_duration_seconds_count", "proto=smtp,command=DATA", 1},
		{"loft_deliveries_total", "proto=smtp,outcome=accepted", 1},
		{"loft_deliveries_total", "proto=smtp,outcome=rejected-unknown-user", 1},
		{"loft_deliveries_total", "proto=smtp,outcome=rejected-relay", 1},
		{"loft_deliveries_total", "proto=lmtp,outcome=accepted", 1},
		{"loft_deliveries_total", "proto=lmtp,outcome=rejected-quota", 1},
		{"loft_auth_failures_total", "proto=imap,mechanism=LOGIN", 1},
		{"loft_auth_failures_total", "proto=pop3,mechanism=USER", 1},
		{"loft_store_commit_duration_seconds_count", "", -2},
		{"loft_accounts", "", 2},
		{"loft_quota_messages", "", 2},
		{"loft_quota_used_bytes", "", float64(totals.Usage)},
		{"go_goroutines", "", -2},
	} {
		got := sample(page, c.name, c.labels)
		if c.want == -2 && got > 0 || got == c.want {
			continue
		}
		t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
	}
	if totals.Usage == 0 {
		t.Error("nothing delivered")
	}
	if t.Failed() {
		t.Logf("metrics page:\n%s", page)
	}
}

// TestSessionAndDeliveryLogLines: every session of every protocol ends
// with one line saying who, from where, how long, how many commands and
// bytes, and why it ended; every delivery has its line; no password and
// no message text is logged.
func TestSessionAndDeliveryLogLines(t *testing.T) {
	srv, addrs, logs := observedServer(t)
	trafficOfEveryProtocol(t, addrs)

	// The line is written as the server closes the connection, which the
	// client may see first.
	var lines []map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines = logs.logLines(t)
		if len(find(lines, "session ended", nil)) >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range []struct {
		proto, account string
		commands       float64
	}{
		{"smtp", "", 6}, // EHLO MAIL RCPT×3 DATA (go-smtp answers QUIT itself)
		{"lmtp", "", 5}, // LHLO MAIL RCPT×2 DATA
		{"imap", "alice@localhost", 6},
		{"pop3", "alice@localhost", 7},
	} {
		ended := find(lines, "session ended", map[string]any{"proto": c.proto})
		if len(ended) != 1 {
			t.Errorf("%s: %d session end lines, want 1", c.proto, len(ended))
			continue
		}
		l := ended[0]
		if l["reason"] != "logout" {
			t.Errorf("%s session ended for %v, want logout", c.proto, l["reason"])
		}
		if c.account != "" && l["account"] != c.account {
			t.Errorf("%s session end: account %v, want %s", c.proto, l["account"], c.account)
		}
		if r, _ := l["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("%s session end: remote %v", c.proto, l["remote"])
		}
		if l["commands"] != c.commands {
			t.Errorf("%s session end: %v commands, want %v", c.proto, l["commands"], c.commands)
		}
		for _, k := range []string{"bytes_in", "bytes_out", "duration", "session"} {
			if n, ok := l[k].(float64); !ok || n <= 0 {
				t.Errorf("%s session end: %s = %v, want > 0", c.proto, k, l[k])
			}
		}
	}

	totals, err := srv.Store.Totals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sizes float64
	for _, c := range []struct{ proto, messageID string }{
		{"smtp", "<smtp-1@example.org>"},
		{"lmtp", "<lmtp-1@example.org>"},
	} {
		delivered := find(lines, "delivered", map[string]any{"proto": c.proto})
		if len(delivered) != 1 {
			t.Errorf("%s: %d delivery lines, want 1", c.proto, len(delivered))
			continue
		}
		l := delivered[0]
		if fmt.Sprint(l["rcpts"]) != "[alice@localhost]" || l["from"] != "bob@example.org" ||
			l["message_id"] != c.messageID || l["outcome"] != "accepted" {
			t.Errorf("%s delivery line %v", c.proto, l)
		}
		size, _ := l["size"].(float64)
		if d, _ := l["duration"].(float64); size <= 0 || d <= 0 {
			t.Errorf("%s delivery line: size %v, duration %v", c.proto, l["size"], l["duration"])
		}
		sizes += size
	}
	if sizes != float64(totals.Usage) {
		t.Errorf("delivery lines add up to %v bytes, the store holds %d", sizes, totals.Usage)
	}
	if len(find(lines, "not delivered", map[string]any{"proto": "lmtp", "rcpt": "tiny@localhost", "outcome": "rejected-quota"})) != 1 {
		t.Error("no line for the over-quota LMTP recipient")
	}
	if len(find(lines, "recipient refused", map[string]any{"proto": "smtp", "outcome": "rejected-unknown-user"})) != 1 {
		t.Error("no line for the unknown SMTP recipient")
	}

	all := logs.String()
	for _, secret := range []string{alicePassword, wrongPassword, bodySecret} {
		if strings.Contains(all, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", all)
	}
}

// TestMetricsOffByDefault: without listen.metrics, nothing more listens.
func TestMetricsOffByDefault(t *testing.T) {
	_, addrs := start(t, testConfig(t, nil))
	if a, ok := addrs["metrics"]; ok {
		t.Errorf("metrics listening on %s without listen.metrics", a)
	}
}

// TestRefusedConnectionsCounted: loft_connections_refused_total counts the
// connections the limits and the block refuse, by listener and reason,
// from 0.
func TestRefusedConnectionsCounted(t *testing.T) {
	cfg := testConfig(t, func(c *config.Config) {
		c.Listen.Metrics = "127.0.0.1:0"
		c.Limits.MaxConnectionsPerIP = 1
		c.Limits.MaxConnections = 2
		c.Auth.BlockAfter = 1
	})
	_, addrs := start(t, cfg)
	page := scrape(t, addrs["metrics"])
	for _, r := range []string{"per_ip", "total", "blocked"} {
		if v := sample(page, "loft_connections_refused_total", "listener=imap,reason="+r); v != 0 {
			t.Fatalf("before any refusal, %s = %v, want a series at 0", r, v)
		}
	}
	_, held := firstLine(t, addrs["imap"], "")
	firstLine(t, addrs["imap"], "")                      // over the per-address limit
	firstLine(t, addrs["pop3"], "")                      // likewise, on another listener
	_, other := firstLine(t, addrs["pop3"], "127.0.0.2") // within the limits: the total is reached
	firstLine(t, addrs["pop3"], "127.0.0.3")             // over the total
	other.Close()
	// One wrong password blocks 127.0.0.1 (block_after = 1); firstLine
	// has read the greeting.
	held.SetReadDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(held, "a LOGIN nobody@localhost wrong\r\n")
	bufio.NewReader(held).ReadString('\n')
	held.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, c := firstLine(t, addrs["imap"], "")
		c.Close()
		if strings.Contains(l, "failed logins") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not blocked: %q", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	page = scrape(t, addrs["metrics"])
	for _, c := range []struct {
		labels string
		want   float64
	}{
		{"listener=imap,reason=per_ip", 1},
		{"listener=pop3,reason=per_ip", 1},
		{"listener=pop3,reason=total", 1},
		{"listener=imap,reason=blocked", 1},
		{"listener=smtp,reason=blocked", 0},
	} {
		if v := sample(page, "loft_connections_refused_total", c.labels); v != c.want {
			t.Errorf("loft_connections_refused_total{%s} = %v, want %v", c.labels, v, c.want)
		}
	}
}
