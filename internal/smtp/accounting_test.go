package smtp

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"loft/internal/store"
)

// lockedBuffer collects log output written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the JSON log lines with message msg.
func (l *lockedBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitLines waits for n lines with message msg.
func (l *lockedBuffer) waitLines(t *testing.T, msg string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := l.lines(t, msg)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOversizeDeliveryLoggedAsRejectedSize: a message over the size limit
// has a delivery line saying so, at info level (the client's doing), and
// the connection the client drops has its end line saying "closed", with
// the same session number.
func TestOversizeDeliveryLoggedAsRejectedSize(t *testing.T) {
	logs := &lockedBuffer{}
	e := newEnvWith(t, store.Unlimited, func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	e.addAccount(t, "bob@example.test", nil)
	c := dial(t, e.smtpAddr)
	c.cmd("EHLO client.example", "250 ")
	c.cmd("MAIL FROM:<a@elsewhere.example>", "250 ")
	c.cmd("RCPT TO:<bob@example.test>", "250 ")
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("b", 998)+"\r\n", testMaxSize/1000+10)
	c.data(big, "552 5.3.4 ")
	c.conn.Close()

	failed := logs.waitLines(t, "delivery failed", 1)
	if len(failed) != 1 || failed[0]["outcome"] != "rejected-size" || failed[0]["level"] != "INFO" ||
		failed[0]["from"] != "a@elsewhere.example" {
		t.Errorf("delivery failed lines: %v", failed)
	}
	ended := logs.waitLines(t, "session ended", 1)
	if len(ended) != 1 {
		t.Fatalf("%d session end lines", len(ended))
	}
	l := ended[0]
	if l["reason"] != "closed" || l["proto"] != "smtp" || l["commands"] != 4.0 || l["messages"] != 1.0 {
		t.Errorf("session end line %v", l)
	}
	if len(failed) == 1 && l["session"] != failed[0]["session"] {
		t.Errorf("session %v ends, delivery of session %v", l["session"], failed[0]["session"])
	}
}
