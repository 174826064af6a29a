// Package postfix tests Loft behind Debian's Postfix, configured as
// docs/OPERATIONS.md ("Running behind Postfix") says: Postfix receives
// mail over SMTP and hands it to Loft over LMTP, asking Loft (address
// verification over LMTP) which recipients exist.
//
// The test runs a private Postfix instance (postfix -c DIR: its own
// main.cf, master.cf, queue and data directories under a temp dir, SMTP on
// a free loopback port) beside an in-process Loft, so it touches neither
// the system's Postfix nor port 25. It needs root (Postfix's master starts
// as root) and the postfix package; without them it skips, unless
// LOFT_INTEROP=required, when it fails.
package postfix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"loft/internal/auth"
	"loft/internal/config"
	"loft/internal/server"
)

// Bounds, so that a stuck Postfix fails the test instead of hanging it.
const (
	cmdTimeout      = 30 * time.Second // one postfix command
	deliveryTimeout = 30 * time.Second // from Postfix's 250 to the message in Loft
	netTimeout      = 10 * time.Second // one SMTP or IMAP command
)

// postfixBin finds the postfix command (in /usr/sbin, often not on a
// user's PATH), or skips the test, or fails it when interop is required.
func postfixBin(t *testing.T) string {
	t.Helper()
	missing := func(why string) {
		if os.Getenv("LOFT_INTEROP") == "required" {
			t.Fatalf("postfix interop test cannot run: %s (LOFT_INTEROP=required)", why)
		}
		t.Skipf("postfix interop test skipped: %s (set LOFT_INTEROP=required to fail instead)", why)
	}
	path, err := exec.LookPath("postfix")
	if err != nil {
		path = "/usr/sbin/postfix"
		if _, err := os.Stat(path); err != nil {
			missing("postfix is not installed (apt-get install postfix, with \"No configuration\")")
		}
	}
	if os.Geteuid() != 0 {
		missing("Postfix's master must start as root")
	}
	return path
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startLoft runs Loft in-process with LMTP and IMAP on free loopback ports
// and the given accounts (password "pw").
func startLoft(t *testing.T, dir string, accounts ...string) *server.Server {
	t.Helper()
	path := filepath.Join(dir, "loft.toml")
	toml := fmt.Sprintf(`hostname = "mail.example.test"
domains = ["example.test"]
data_dir = %q

[listen]
lmtp = "127.0.0.1:0"
imap = "127.0.0.1:0"
`, filepath.Join(dir, "data"))
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	hash, err := auth.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accounts {
		if _, err := srv.Store.CreateAccount(context.Background(), a, hash, nil); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

func listener(t *testing.T, srv *server.Server, name string) string {
	t.Helper()
	for _, l := range srv.Listeners() {
		if l.Name == name {
			return l.Addr.String()
		}
	}
	t.Fatalf("loft has no %s listener", name)
	return ""
}

// mainCF is the Postfix configuration under test. The part between the
// markers is the snippet docs/OPERATIONS.md shows (with the domain, the
// LMTP address and the restrictions an MX needs); the rest makes a private
// instance: its own directories, loopback only, a log file.
const mainCF = `compatibility_level = 3.6
queue_directory = {{dir}}/spool
data_directory = {{dir}}/data
maillog_file = {{dir}}/postfix.log
maillog_file_prefixes = {{dir}}
myhostname = mx.example.test
mydomain = example.test
myorigin = $mydomain
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
# Keep probe results in memory only: nothing left behind. Look for a
# probe's result every second rather than three.
address_verify_map =
address_verify_poll_delay = 1s

# --- docs/OPERATIONS.md snippet starts ---
# Mail for Loft's domains goes to Loft over LMTP; no local delivery here.
mydestination =
virtual_mailbox_domains = example.test
virtual_transport = lmtp:inet:{{lmtp}}
# Postfix does not list Loft's accounts: it asks Loft, with an LMTP RCPT
# probe (address verification), and refuses unknown recipients at RCPT
# time with 550 instead of accepting and bouncing them later.
smtpd_reject_unlisted_recipient = no
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access inline:{example.test=reject_unverified_recipient}
unverified_recipient_reject_code = 550
# Loft refuses over-quota mail with 552 5.2.2 (permanent): bounce it.
# The same size limit as Loft's smtp.max_message_size (64MB = 64,000,000
# bytes by default), so that Postfix refuses at once what Loft would refuse.
message_size_limit = 64000000
# --- docs/OPERATIONS.md snippet ends ---
`

// masterCF runs only the services a receiving MX needs, none chrooted
// (the private queue directory has no chroot files), SMTP on the test's
// port.
const masterCF = `127.0.0.1:{{smtpport}} inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
lmtp       unix  - - n -  - lmtp
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
`

// postfix is a running private Postfix instance.
type postfix struct {
	bin, confDir, dir string
	smtp              string // its SMTP address
}

func (p *postfix) run(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, p.bin, append([]string{"-c", p.confDir}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("postfix -c %s %s: %v\n%s", p.confDir, strings.Join(args, " "), err, out)
	}
	return nil
}

func (p *postfix) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "postfix.log"))
	return string(b)
}

// startPostfix writes a private instance's configuration and starts it,
// relaying to Loft's LMTP at lmtp.
func startPostfix(t *testing.T, bin, lmtp string) *postfix {
	t.Helper()
	// Postfix's daemons run as the postfix user, which must reach the
	// queue: not under the test's private 0700 temp dir.
	dir, err := os.MkdirTemp("", "loft-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &postfix{bin: bin, confDir: filepath.Join(dir, "etc"), dir: dir}
	port := freePort(t)
	p.smtp = "127.0.0.1:" + strconv.Itoa(port)
	r := strings.NewReplacer("{{dir}}", dir, "{{lmtp}}", lmtp, "{{smtpport}}", strconv.Itoa(port))
	for _, d := range []string{p.confDir, filepath.Join(dir, "spool")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range map[string]string{"main.cf": mainCF, "master.cf": masterCF} {
		if err := os.WriteFile(filepath.Join(p.confDir, name), []byte(r.Replace(text)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// check creates the queue and data directories with their owners.
	if err := p.run(t, "check"); err != nil {
		t.Fatal(err)
	}
	if err := p.run(t, "start"); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, p.log())
	}
	t.Cleanup(func() {
		if err := p.run(t, "stop"); err != nil {
			t.Logf("stopping postfix: %v", err)
			p.run(t, "abort")
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("postfix log:\n%s", p.log())
		}
	})
	// The master binds its listener as it starts; wait for it.
	deadline := time.Now().Add(cmdTimeout)
	for {
		c, err := net.DialTimeout("tcp", p.smtp, time.Second)
		if err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix does not listen on %s: %v\nlog:\n%s", p.smtp, err, p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// submit sends msg to rcpt through Postfix's SMTP. Address verification
// answers 450 while its first probe is under way: such a transaction is
// tried again, for up to deliveryTimeout. It returns the final error.
func submit(t *testing.T, addr, rcpt string, msg []byte) error {
	t.Helper()
	deadline := time.Now().Add(deliveryTimeout)
	for {
		err := func() error {
			c, err := gosmtp.Dial(addr)
			if err != nil {
				return err
			}
			defer c.Close()
			c.CommandTimeout, c.SubmissionTimeout = netTimeout, netTimeout
			if err := c.Hello("client.example.net"); err != nil {
				return err
			}
			if err := c.Mail("sender@example.net", nil); err != nil {
				return err
			}
			if err := c.Rcpt(rcpt, nil); err != nil {
				return err
			}
			w, err := c.Data()
			if err != nil {
				return err
			}
			if _, err := w.Write(msg); err != nil {
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
			return c.Quit()
		}()
		var se *gosmtp.SMTPError
		if err == nil || !errors.As(err, &se) || se.Code/100 != 4 || time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestPostfixDeliversToLoftOverLMTP: a message sent to Postfix over SMTP
// is delivered by Postfix to Loft over LMTP and is then in the recipient's
// INBOX, readable over IMAP byte for byte (below the trace headers Postfix
// and Loft add); mail for an address Loft does not know is refused by Postfix at
// RCPT with 550, because Postfix asked Loft.
func TestPostfixDeliversToLoftOverLMTP(t *testing.T) {
	bin := postfixBin(t)
	srv := startLoft(t, t.TempDir(), "alice@example.test")
	lmtp := listener(t, srv, "lmtp")
	p := startPostfix(t, bin, lmtp)

	token := fmt.Sprintf("postfix-%d", time.Now().UnixNano())
	msg := []byte("From: Sender <sender@example.net>\r\nTo: alice@example.test\r\nSubject: through Postfix\r\n" +
		"Message-ID: <" + token + "@example.net>\r\nDate: Mon, 2 Jun 2025 10:00:00 +0000\r\n\r\n" +
		"Hello Alice,\r\n" + token + "\r\n")
	if err := submit(t, p.smtp, "alice@example.test", msg); err != nil {
		t.Fatalf("postfix refused mail for alice: %v", err)
	}

	// Postfix has accepted; its queue manager now delivers over LMTP.
	ctx := context.Background()
	a, err := srv.Store.Account(ctx, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	mb, err := srv.Store.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(deliveryTimeout)
	for {
		ms, err := srv.Store.Messages(ctx, a.ID, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message in alice's INBOX %v after Postfix accepted it", deliveryTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Read it as a mail client would: over IMAP.
	c, err := imapclient.DialInsecure(listener(t, srv, "imap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.test", "pw").Wait(); err != nil {
		t.Fatalf("IMAP login: %v", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("IMAP SELECT INBOX: %d messages, want 1", sel.NumMessages)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("IMAP FETCH: %v", err)
	}
	if len(bufs) != 1 {
		t.Fatalf("IMAP FETCH: %d messages", len(bufs))
	}
	got := bufs[0].FindBodySection(section)
	if !bytes.HasSuffix(got, msg) {
		t.Errorf("message over IMAP does not end with the message sent:\n%s", got)
	}
	if !bytes.Contains(got, []byte("by mx.example.test (Postfix)")) {
		t.Errorf("message over IMAP lacks Postfix's Received line:\n%s", got)
	}
	c.Logout().Wait()

	// An address Loft does not know: Postfix asks Loft and refuses it.
	err = submit(t, p.smtp, "nobody@example.test", msg)
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("mail for an unknown address: %v, want 550 at RCPT", err)
	}

	rep, err := srv.Store.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Errorf("check: %q", rep.Problems)
	}
	if n := strings.Count(p.log(), "status=sent"); n != 1 {
		t.Errorf("postfix log shows %d deliveries (status=sent), want 1", n)
	}
}
