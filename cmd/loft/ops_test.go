// End-to-end tests of the operations commands (check --repair, backup,
// restore) on the built binary, beside a running `loft serve` and without
// one, and of the deployment files in deploy/.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loft/internal/blob"
	"loft/internal/config"
	"loft/internal/store"
)

// addAccounts adds accounts through the CLI, password "pw".
func addAccounts(t *testing.T, r cli, cfg string, addrs ...string) {
	t.Helper()
	r.stdin = "pw\n"
	for _, a := range addrs {
		r.ok(t, "account", "add", a, "--config", cfg)
	}
}

// inboxOf returns an account's INBOX messages, in UID order, with their
// bytes, and the INBOX.
func inboxOf(t *testing.T, st *store.Store, addr string) (*store.Mailbox, []store.MessageInfo, map[uint32]string) {
	t.Helper()
	ctx := context.Background()
	a, err := st.Account(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := st.Messages(ctx, a.ID, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[uint32]string{}
	for _, m := range ms {
		f, err := st.OpenBody(m.Blob)
		if err != nil {
			t.Fatalf("%s uid %d: %v", addr, m.UID, err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		bodies[m.UID] = string(b)
	}
	return mb, ms, bodies
}

// TestCheckRepairOnStoppedStore damages a stopped store three ways (a
// message's body file deleted, a body file without a message, a wrong
// usage figure), then: `loft check` reports each in one line and fails;
// `loft check --repair` fixes them, saying what it did (the message whose
// content is gone is expunged and named by UID; the orphan becomes a
// message in postmaster's lost+found); and `loft check` is then clean, with
// every other message as it was.
func TestCheckRepairOnStoppedStore(t *testing.T) {
	dir := t.TempDir()
	cfg, dataDir := writeConfig(t, dir, "")
	r := cli{dir: dir}
	addAccounts(t, r, cfg, "alice@example.test", "postmaster@example.test")
	ctx := context.Background()
	st := openTestStore(t, dataDir)
	var blobs []string
	for i := range 3 {
		res, err := st.Deliver(ctx, strings.NewReader(string(testMessage(fmt.Sprintf("m%d", i), 500))),
			store.DeliverOptions{Recipients: []string{"alice@example.test"}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
	}
	_, ms, before := inboxOf(t, st, "alice@example.test")
	for _, m := range ms {
		blobs = append(blobs, m.Blob)
	}
	st.Close()

	bs, err := blob.Open(filepath.Join(dataDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	if err := os.Remove(bs.Path(blobs[1])); err != nil {
		t.Fatal(err)
	}
	orphan := "Subject: orphan\r\n\r\nits row was lost\r\n"
	w, err := bs.Create()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, orphan)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "loft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE accounts SET usage = usage + 4242 WHERE address = 'alice@example.test'`); err != nil {
		t.Fatal(err)
	}

	res := r.loft(t, "check", "--config", cfg)
	if res.code != 1 {
		t.Fatalf("check of a damaged store: exit %d, want 1\n%s", res.code, res.stdout)
	}
	oneLineWith(t, "loft check", res.stderr, "3 problems", "--repair")
	for _, want := range []string{
		`problem: account alice@example.test, mailbox "INBOX", uid 2: its body file ` + blobs[1] + ` is missing`,
		`problem: body file ` + w.ID + ` (` + fmt.Sprint(len(orphan)) + ` bytes`,
		`problem: account alice@example.test: usage`,
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, res.stdout)
		}
	}
	out := r.ok(t, "check", "--repair", "--config", cfg)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^repaired: account alice@example.test, mailbox "INBOX": expunged uid 2, whose body file \S+ is missing`),
		regexp.MustCompile(`(?m)^repaired: moved body file ` + w.ID + ` .* to account postmaster@example.test, mailbox "lost\+found", uid 1$`),
		regexp.MustCompile(`(?m)^repaired: account alice@example.test: usage \d+ set to \d+`),
		regexp.MustCompile(`(?m)^ok: store is consistent after repairing 3 problems$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("check --repair output does not match %s:\n%s", want, out)
		}
	}
	if out := r.ok(t, "check", "--config", cfg); !checkOK.MatchString(out) {
		t.Errorf("check after repair: %q", out)
	}

	st = openTestStore(t, dataDir)
	defer st.Close()
	_, ms, after := inboxOf(t, st, "alice@example.test")
	if len(ms) != 2 || after[1] != before[1] || after[3] != before[3] {
		t.Errorf("alice's INBOX after repair: %d messages; want uids 1 and 3 unchanged", len(ms))
	}
	pm, err := st.Account(ctx, "postmaster@example.test")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := st.Mailbox(ctx, pm.ID, store.LostFound)
	if err != nil {
		t.Fatal(err)
	}
	lfm, err := st.Messages(ctx, pm.ID, lf.ID)
	if err != nil || len(lfm) != 1 || lfm[0].Blob != w.ID {
		t.Fatalf("postmaster's lost+found: %+v, %v", lfm, err)
	}
}

// TestCheckBesideRunningServer: with `loft serve` running, a fresh body
// file without a message may be a delivery in flight, so check calls it a
// note, not a problem, and --repair leaves it alone.
func TestCheckBesideRunningServer(t *testing.T) {
	dir := t.TempDir()
	cfg, dataDir := writeConfig(t, dir, "")
	r := cli{dir: dir}
	addAccounts(t, r, cfg, "postmaster@example.test")
	s := serve(t, r, []string{"lmtp"}, "--config", cfg)
	c := dial(t, s.listeners["lmtp"], true)
	mustSend(t, c, 0, "postmaster@example.test", testMessage("hello", 1000))

	bs, err := blob.Open(filepath.Join(dataDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	w, err := bs.Create()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: in flight\r\n\r\n")
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check"}, {"check", "--repair"}} {
		out := r.ok(t, append(args, "--config", cfg)...)
		if !strings.Contains(out, "note: 1 body files without a message, younger than an hour") || !checkOK.MatchString(out) ||
			strings.Contains(out, "moved body") {
			t.Errorf("loft %s beside the server: %q", strings.Join(args, " "), out)
		}
	}
	if _, err := os.Stat(bs.Path(w.ID)); err != nil {
		t.Errorf("the file in flight was touched: %v", err)
	}
	c.Quit()
	s.stop()
}

// TestBackupRestoreUnderLoad backs up a running server twice while LMTP
// deliveries keep arriving, restores each backup into a new data directory
// and checks: each restored INBOX holds UIDs 1..n with the same UIDVALIDITY
// and byte for byte the original's messages of those UIDs (IMAP clients
// need no resync, POP3 UIDLs, UIDVALIDITY.UID, are unchanged), n covers
// every delivery acknowledged before the backup started, the second
// backup shared the first's bodies, the restored store is consistent and a
// server started on it takes the next UID.
func TestBackupRestoreUnderLoad(t *testing.T) {
	dir := t.TempDir()
	cfg, dataDir := writeConfig(t, dir, "")
	r := cli{dir: dir}
	rcpts := []string{"alice@example.test", "bob@example.test"}
	addAccounts(t, r, cfg, rcpts...)
	s := serve(t, r, []string{"lmtp"}, "--config", cfg)
	backups := filepath.Join(dir, "backups")

	var acked [2]atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		c := dial(t, s.listeners["lmtp"], true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (w + i) % 2
				if _, err := send(c, 0, rcpts[k], testMessage(fmt.Sprintf("w%d m%d", w, i), 300+i*37%4000)); err != nil {
					errs <- err
					return
				}
				acked[k].Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	var gens []string
	var ackedAtStart [][2]int64
	genLine := regexp.MustCompile(`(?m)^backup written to (\S+)$`)
	for i := range 2 {
		ackedAtStart = append(ackedAtStart, [2]int64{acked[0].Load(), acked[1].Load()})
		out := r.ok(t, "backup", backups, "--config", cfg)
		m := genLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("backup output: %q", out)
		}
		gens = append(gens, m[1])
		if i == 1 && regexp.MustCompile(`bodies: 0 shared`).MatchString(out) {
			t.Errorf("the second backup shared no body with the first: %q", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("delivery under backup: %v", err)
	default:
	}
	s.stop()
	if out := r.ok(t, "check", "--config", cfg); !checkOK.MatchString(out) {
		t.Errorf("check of the original: %q", out)
	}
	orig := openTestStore(t, dataDir)
	defer orig.Close()

	for i, gen := range gens {
		from := gen
		if i == len(gens)-1 {
			from = backups // the newest, by default
		}
		rdir := filepath.Join(dir, fmt.Sprintf("restored%d", i))
		if err := os.Mkdir(rdir, 0o755); err != nil {
			t.Fatal(err)
		}
		rcfg, rdata := writeConfig(t, rdir, "")
		out := r.ok(t, "restore", from, "--config", rcfg)
		if !strings.Contains(out, "from "+gen+":") || !strings.Contains(out, "ok: restored store is consistent") {
			t.Errorf("restore %s: %q", from, out)
		}
		rst := openTestStore(t, rdata)
		for k, addr := range rcpts {
			omb, oms, obodies := inboxOf(t, orig, addr)
			rmb, rms, rbodies := inboxOf(t, rst, addr)
			if rmb.UIDValidity != omb.UIDValidity {
				t.Errorf("backup %d, %s: UIDVALIDITY %d, want %d", i+1, addr, rmb.UIDValidity, omb.UIDValidity)
			}
			if int64(len(rms)) < ackedAtStart[i][k] {
				t.Errorf("backup %d, %s: %d messages, but %d were acknowledged before it started",
					i+1, addr, len(rms), ackedAtStart[i][k])
			}
			for j, m := range rms {
				if m.UID != uint32(j+1) || rbodies[m.UID] != obodies[m.UID] || fmt.Sprint(m.Flags) != fmt.Sprint(oms[j].Flags) {
					t.Errorf("backup %d, %s: restored message %d is uid %d, or differs from the original's", i+1, addr, j+1, m.UID)
					break
				}
			}
			if rmb.UIDNext != uint32(len(rms)+1) {
				t.Errorf("backup %d, %s: UIDNEXT %d after %d messages", i+1, addr, rmb.UIDNext, len(rms))
			}
			t.Logf("backup %d, %s: %d of %d messages (%d acknowledged at its start)", i+1, addr, len(rms), len(oms), ackedAtStart[i][k])
		}
		_, rms, _ := inboxOf(t, rst, rcpts[0])
		rst.Close()

		// The restored data directory serves: the next message gets
		// the next UID.
		rs := serve(t, r, []string{"lmtp"}, "--config", rcfg)
		c := dial(t, rs.listeners["lmtp"], true)
		mustSend(t, c, 0, rcpts[0], testMessage("after restore", 500))
		c.Quit()
		rs.stop()
		rst = openTestStore(t, rdata)
		if _, ms, _ := inboxOf(t, rst, rcpts[0]); len(ms) != len(rms)+1 || ms[len(ms)-1].UID != uint32(len(rms)+1) {
			t.Errorf("restored server: delivery did not get uid %d", len(rms)+1)
		}
		rst.Close()

		// A restore never overwrites a data directory in use.
		r.fails(t, []string{"restore", from, "--config", rcfg}, "not empty")
	}
	r.fails(t, []string{"restore", filepath.Join(dir, "nothing-here"), "--config", cfg}, "restore")
}

// TestRestoreRefusesRunningServer: restore needs the data directory to
// itself.
func TestRestoreRefusesRunningServer(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := writeConfig(t, dir, "")
	r := cli{dir: dir}
	s := serve(t, r, []string{"lmtp"}, "--config", cfg)
	r.ok(t, "backup", "--config", cfg, filepath.Join(dir, "b"))
	r.fails(t, []string{"restore", filepath.Join(dir, "b"), "--config", cfg}, "running")
	s.stop()
}

// TestSampleConfigLoads: deploy/loft.toml.sample is a valid configuration,
// for the standard ports, with ACME, and its data directory is the one the
// systemd unit gives the service.
func TestSampleConfigLoads(t *testing.T) {
	c, err := config.Load("../../deploy/loft.toml.sample")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Listen{SMTP: ":25", LMTP: "127.0.0.1:24", IMAP: ":143", IMAPS: ":993", POP3: ":110", POP3S: ":995",
		Metrics: "127.0.0.1:9465"} // metrics on loopback only
	got := c.Listen
	got.Submission = ""
	if got != want {
		t.Errorf("sample listeners %+v, want the standard ports %+v", got, want)
	}
	if !c.TLS.ACME || c.DataDir != "/var/lib/loft" {
		t.Errorf("sample: acme %v, data_dir %s; want ACME and /var/lib/loft", c.TLS.ACME, c.DataDir)
	}
	unit, err := os.ReadFile("../../deploy/loft.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"StateDirectory=loft", "ExecStart=/usr/local/bin/loft serve --config /etc/loft/loft.toml"} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("deploy/loft.service lacks %q", want)
		}
	}
}

// TestSystemdUnitVerifies runs systemd-analyze verify on deploy/loft.service
// (with ExecStart pointing at the binary under test, which must exist for
// it), so that a misspelt directive fails here rather than on a server.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	unit, err := os.ReadFile("../../deploy/loft.service")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "loft.service")
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/loft", loftBin)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	// Without a running systemd (a container) verify still parses the
	// unit; keep only complaints about the unit itself.
	var complaints []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "loft.service:") {
			complaints = append(complaints, l)
		}
	}
	if len(complaints) > 0 {
		t.Errorf("systemd-analyze verify (%v):\n%s", err, strings.Join(complaints, "\n"))
	}

	// The hardening, as systemd scores it (0 best, 10 worst; 2 and
	// below is "OK"). --offline needs systemd 252 or later.
	out, err = exec.Command(analyze, "security", "--offline=true", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for loft.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Logf("systemd-analyze security --offline: %v; exposure not scored:\n%s", err, out)
		return
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 2.0 {
		t.Errorf("systemd exposure level %.1f, want 2.0 or less:\n%s", score, out)
	}
}
