package smtp

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// needClient returns the path of a real client program, or skips the test
// when it is missing (failing instead under LOFT_INTEROP=required, as in CI).
func needClient(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("LOFT_INTEROP") == "required" {
			t.Fatalf("%s is required (LOFT_INTEROP=required) but missing: %v", name, err)
		}
		t.Skipf("%s not installed; skipping interop test", name)
	}
	return path
}

func runClient(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	return string(out)
}

// Python's smtplib delivers over SMTP with STARTTLS, an 8-bit message with
// a 5,000-character line and a malformed header; it is stored byte-exact.
func TestInteropPythonSmtplib(t *testing.T) {
	py := needClient(t, "python3")
	e := newEnv(t, 0)
	e.addAccount(t, "bob@example.test", nil)
	script := `
import smtplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
msg = (b"From: Alice <alice@elsewhere.example>\r\nTo: bob@example.test\r\n"
       b"Subject: smtplib caf\xc3\xa9\r\nThis header is broken\r\n\r\n"
       + b"x" * 5000 + b"\r\n.dot line\r\n8-bit: \xc3\xa9\r\n")
with smtplib.SMTP(host, int(port), timeout=20) as s:
    s.ehlo("py.example")
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    s.ehlo("py.example")
    refused = s.sendmail("alice@elsewhere.example", ["bob@example.test"], msg, mail_options=["BODY=8BITMIME"])
    assert not refused, refused
    try:
        s.sendmail("alice@elsewhere.example", ["nobody@example.test"], b"Subject: x\r\n\r\nx\r\n")
        raise SystemExit("unknown recipient accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients["nobody@example.test"]
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
print("ok")
`
	// Unlimited quota for this env.
	q := int64(-1)
	e.st.SetQuota(context.Background(), "bob@example.test", &q)
	out := runClient(t, py, "-c", script, e.smtpAddr)
	if !strings.Contains(out, "ok") {
		t.Fatalf("smtplib: %s", out)
	}
	got := e.inbox(t, "bob@example.test")
	want := "From: Alice <alice@elsewhere.example>\r\nTo: bob@example.test\r\n" +
		"Subject: smtplib caf\xc3\xa9\r\nThis header is broken\r\n\r\n" +
		strings.Repeat("x", 5000) + "\r\n.dot line\r\n8-bit: \xc3\xa9\r\n"
	if len(got) != 1 || !strings.HasSuffix(got[0], "\r\n"+want) {
		t.Fatalf("stored %d messages; first %.300q", len(got), got)
	}
	if !strings.Contains(got[0], "with ESMTPS id") {
		t.Errorf("Received header does not show TLS: %.300q", got[0])
	}
}

// swaks delivers over LMTP; a full mailbox refuses while another recipient
// of the same transaction gets the message.
func TestInteropSwaksLMTP(t *testing.T) {
	swaks := needClient(t, "swaks")
	e := newEnv(t, 0)
	unlimited := int64(-1)
	e.addAccount(t, "open@example.test", &unlimited)
	e.addAccount(t, "full@example.test", nil) // default quota 0: full
	out := runClient(t, swaks, "--server", e.lmtpAddr, "--protocol", "LMTP",
		"--from", "alice@elsewhere.example", "--to", "open@example.test,full@example.test",
		"--header", "Subject: swaks over LMTP", "--body", "hello from swaks", "--timeout", "20")
	if !strings.Contains(out, "250 ") || !strings.Contains(out, "552 5.2.2") {
		t.Errorf("swaks transcript lacks 250 or 552 5.2.2:\n%s", out)
	}
	got := e.inbox(t, "open@example.test")
	if len(got) != 1 || !strings.Contains(got[0], "Subject: swaks over LMTP") || !strings.Contains(got[0], "hello from swaks") {
		t.Errorf("open mailbox: %q", got)
	}
	if n := len(e.inbox(t, "full@example.test")); n != 0 {
		t.Errorf("full mailbox got %d messages", n)
	}
	// swaks over SMTP to a foreign domain: relaying refused.
	cmd := exec.Command(swaks, "--server", e.smtpAddr, "--from", "a@elsewhere.example",
		"--to", "victim@elsewhere.example", "--timeout", "20")
	relay, _ := cmd.CombinedOutput()
	if !strings.Contains(string(relay), "554 5.7.1") {
		t.Errorf("relay attempt not refused with 554 5.7.1:\n%s", relay)
	}
}
