package interop

// mbsync (isync) against `loft serve`: INBOX, Sent, Drafts and a nested
// folder synchronised both ways. A local draft and a local message in the
// nested folder reach the server, a local \Seen and a local delete reach
// the server, a server-side delivery reaches the local side, and a further
// run changes nothing on either side.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func TestInteropIMAPMbsync(t *testing.T) {
	mbsync := needClient(t, "mbsync")
	p := startLoft(t, "")
	const user, pass = "mb@example.test", "mb password"
	p.addAccount(t, user, pass)
	p.deliverLMTP(t, testMessage(1), user)
	p.deliverLMTP(t, testMessage(2), user)
	c := dialIMAP(t, p, user, pass, nil)
	if err := c.Create("Work/Sub", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appendMsg(t, c, "Sent", "Subject: sent on server\r\n\r\nsent\r\n", imap.FlagSeen)
	appendMsg(t, c, "Work/Sub", "Subject: nested on server\r\n\r\nnested\r\n")

	local := filepath.Join(p.Dir, "mail")
	_, port, _ := strings.Cut(p.Addrs["imap"], ":")
	cfg := fmt.Sprintf(`IMAPAccount loft
Host 127.0.0.1
Port %s
User %s
Pass "%s"
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account loft

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Sent Drafts Work Work/Sub
Create Both
Expunge Both
SyncState *
`, port, user, pass, local, local)
	cfgFile := filepath.Join(p.Dir, "mbsyncrc")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(local, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		t.Helper()
		out, code := runClient(t, imapTimeout, append(os.Environ(), "HOME="+p.Dir), mbsync, "-c", cfgFile, "-a")
		if code != 0 {
			t.Fatalf("mbsync failed (%d):\n%s", code, out)
		}
		return out
	}

	// First run: the server's mail comes down.
	run()
	for box, n := range map[string]int{"INBOX": 2, "Sent": 1, "Drafts": 0, "Work/Sub": 1} {
		if got := len(maildirFiles(t, filepath.Join(local, box))); got != n {
			t.Errorf("local %s has %d messages after the first run, want %d", box, got, n)
		}
	}

	// Local changes: a draft, a message in the nested folder, \Seen on
	// one INBOX message, deletion of the other. A delivery on the server.
	writeMaildir(t, filepath.Join(local, "Drafts"), "draft1", "D", "Subject: local draft\r\n\r\nwritten offline\r\n")
	writeMaildir(t, filepath.Join(local, "Work/Sub"), "nested1", "S", "Subject: local nested\r\n\r\nfiled offline\r\n")
	inbox := maildirFiles(t, filepath.Join(local, "INBOX"))
	slices.Sort(inbox)
	seenFile, delFile := inbox[0], inbox[1]
	if strings.Contains(readFile(t, delFile), "interop 1") {
		seenFile, delFile = delFile, seenFile
	}
	markSeen(t, seenFile)
	if err := os.Remove(delFile); err != nil {
		t.Fatal(err)
	}
	p.deliverLMTP(t, testMessage(3), user)

	run()
	if got := len(maildirFiles(t, filepath.Join(local, "INBOX"))); got != 2 {
		t.Errorf("local INBOX has %d messages after the second run, want 2 (one kept, one delivered)", got)
	}
	want := map[string][]string{
		"INBOX":    {`interop 1 [\Seen]`, "interop 3 []"},
		"Sent":     {`sent on server [\Seen]`},
		"Drafts":   {`local draft [\Draft]`},
		"Work/Sub": {"nested on server []", `local nested [\Seen]`},
	}
	check := func(when string) {
		t.Helper()
		c := dialIMAP(t, p, user, pass, nil)
		for box, w := range want {
			if got := serverBox(t, c, box); !slices.Equal(got, w) {
				t.Errorf("%s: server %s has %q, want %q", when, box, got, w)
			}
		}
		c.Logout().Wait()
	}
	check("after the second run")

	// A third run changes nothing, on either side.
	before := snapshot(t, local)
	out := run()
	if after := snapshot(t, local); !slices.Equal(before, after) {
		t.Errorf("third run changed the local side:\n%q\n%q", before, after)
	}
	if regexp.MustCompile(`[1-9]\d* (new message|flag update|message)`).MatchString(out) {
		t.Errorf("third run reports changes:\n%s", out)
	}
	check("after the third run")
}

func appendMsg(t *testing.T, c *imapclient.Client, box, msg string, flags ...imap.Flag) {
	t.Helper()
	cmd := c.Append(box, int64(len(msg)), &imap.AppendOptions{Flags: flags})
	io.WriteString(cmd, msg)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append to %s: %v", box, err)
	}
}

// serverBox lists "subject [flags]" of a mailbox's messages in UID order.
func serverBox(t *testing.T, c *imapclient.Client, box string) []string {
	t.Helper()
	sel, err := c.Select(box, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("examine %s: %v", box, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		var flags []string
		for _, f := range m.Flags {
			flags = append(flags, string(f))
		}
		slices.Sort(flags)
		out = append(out, fmt.Sprintf("%s [%s]", m.Envelope.Subject, strings.Join(flags, " ")))
	}
	return out
}

func maildirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, filepath.Join(dir, sub, e.Name()))
		}
	}
	return out
}

func writeMaildir(t *testing.T, dir, name, flags, msg string) {
	t.Helper()
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "cur", fmt.Sprintf("%d.%s.local:2,%s", time.Now().Unix(), name, flags))
	if err := os.WriteFile(file, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// markSeen gives a maildir message the S flag (moving it to cur/).
func markSeen(t *testing.T, file string) {
	t.Helper()
	base := filepath.Base(file)
	if !strings.Contains(base, ":2,") {
		base += ":2,"
	}
	base += "S"
	if err := os.Rename(file, filepath.Join(filepath.Dir(filepath.Dir(file)), "cur", base)); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot lists every file under dir with its size, state files excepted.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.HasPrefix(info.Name(), ".mbsyncstate") || info.Name() == ".uidvalidity" {
			return nil
		}
		out = append(out, fmt.Sprintf("%s %d", strings.TrimPrefix(path, dir), info.Size()))
		return nil
	})
	slices.Sort(out)
	return out
}
