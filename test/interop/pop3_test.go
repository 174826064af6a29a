package interop

// POP3 with real clients: Python's poplib (STLS, implicit TLS, UIDL, RETR,
// TOP, DELE, a wrong password) and fetchmail in keep and delete modes.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	pop3Password   = "pop3 interop secret"
	clientTimeout  = 60 * time.Second // one run of a client program
	poplibMessages = 3
)

// testMessage is the n-th message the tests deliver. Message 2 has a line
// that needs dot-stuffing; message 3 has bare LF line endings.
func testMessage(n int) string {
	switch n {
	case 2:
		return "From: sender@elsewhere.example\r\nSubject: interop 2\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n"
	case 3:
		return "From: sender@elsewhere.example\nSubject: interop 3\n\nbare LF body\nsecond line\n"
	}
	return fmt.Sprintf("From: sender@elsewhere.example\r\nSubject: interop %d\r\n\r\nbody of message %d\r\n", n, n)
}

const poplibScript = `
import json, poplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
sport = sys.argv[2].rsplit(":", 1)[1]
user, password = sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = {}

p = poplib.POP3(host, int(port), timeout=20)
out["welcome"] = p.getwelcome().decode()
out["capa_plain"] = sorted(p.capa().keys())
try:
    p.apop(user, password)
    out["apop"] = "accepted"
except poplib.error_proto as e:
    out["apop"] = str(e)
p.stls(ctx)
out["capa_tls"] = sorted(p.capa().keys())
p.user(user)
out["pass"] = p.pass_(password).decode()
out["stat"] = list(p.stat())
out["list"] = [l.decode() for l in p.list()[1]]
out["uidl"] = [l.decode() for l in p.uidl()[1]]
out["retr"] = []
for i in range(1, out["stat"][0] + 1):
    resp, lines, octets = p.retr(i)
    out["retr"].append({"resp": resp.decode(), "text": (b"\r\n".join(lines) + b"\r\n").decode()})
out["top"] = [l.decode() for l in p.top(2, 1)[1]]
out["dele"] = p.dele(1).decode()
out["quit"] = p.quit().decode()

p = poplib.POP3_SSL(host, int(sport), context=ctx, timeout=20)
p.user(user)
p.pass_(password)
out["stat_after"] = list(p.stat())
out["uidl_after"] = [l.decode() for l in p.uidl()[1]]
p.quit()

p = poplib.POP3(host, int(port), timeout=20)
p.user(user)
try:
    p.pass_("wrong password")
    out["bad_pass"] = "accepted"
except poplib.error_proto as e:
    out["bad_pass"] = e.args[0].decode()
p.quit()
print(json.dumps(out))
`

type poplibResult struct {
	Welcome   string   `json:"welcome"`
	CapaPlain []string `json:"capa_plain"`
	CapaTLS   []string `json:"capa_tls"`
	APOP      string   `json:"apop"`
	Pass      string   `json:"pass"`
	Stat      []int    `json:"stat"`
	List      []string `json:"list"`
	UIDL      []string `json:"uidl"`
	Retr      []struct {
		Resp string `json:"resp"`
		Text string `json:"text"`
	} `json:"retr"`
	Top       []string `json:"top"`
	Dele      string   `json:"dele"`
	Quit      string   `json:"quit"`
	StatAfter []int    `json:"stat_after"`
	UIDLAfter []string `json:"uidl_after"`
	BadPass   string   `json:"bad_pass"`
}

func TestInteropPythonPoplib(t *testing.T) {
	py := needClient(t, "python3")
	p := startLoft(t, "")
	const user = "alice@" + testDomain
	p.addAccount(t, user, pop3Password)
	for n := 1; n <= poplibMessages; n++ {
		p.deliverLMTP(t, testMessage(n), user)
	}
	out, code := runClient(t, clientTimeout, nil, py, "-c", poplibScript, p.Addrs["pop3"], p.Addrs["pop3s"], user, pop3Password)
	if code != 0 {
		t.Fatalf("poplib script failed (status %d):\n%s", code, out)
	}
	var r poplibResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("poplib output: %v\n%s", err, out)
	}

	if r.Welcome != "+OK localhost Loft POP3 server ready" {
		t.Errorf("greeting %q", r.Welcome)
	}
	for _, c := range []string{"STLS", "USER", "SASL", "TOP", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE"} {
		if !slices.Contains(r.CapaPlain, c) {
			t.Errorf("CAPA before TLS lacks %s: %v", c, r.CapaPlain)
		}
	}
	if slices.Contains(r.CapaTLS, "STLS") || !slices.Contains(r.CapaTLS, "USER") {
		t.Errorf("CAPA under TLS: %v", r.CapaTLS)
	}
	if !strings.Contains(r.APOP, "APOP not supported") {
		t.Errorf("APOP: %q, want poplib to find it not offered", r.APOP)
	}
	if len(r.Stat) != 2 || r.Stat[0] != poplibMessages || len(r.List) != poplibMessages || len(r.Retr) != poplibMessages {
		t.Fatalf("STAT %v, LIST %v, %d retrieved", r.Stat, r.List, len(r.Retr))
	}
	total := 0
	for i, m := range r.Retr {
		// Loft prepends Return-Path and Received; the message follows, with
		// CRLF line endings, unstuffed by poplib.
		want := strings.ReplaceAll(strings.ReplaceAll(testMessage(i+1), "\r\n", "\n"), "\n", "\r\n")
		if !strings.HasPrefix(m.Text, "Return-Path: <sender@elsewhere.example>\r\n") || !strings.HasSuffix(m.Text, "\r\n"+want) {
			t.Errorf("message %d as retrieved:\n%q\nwant it to end with\n%q", i+1, m.Text, want)
		}
		// LIST, RETR's +OK and the octets received agree.
		size := fmt.Sprint(len(m.Text))
		if r.List[i] != fmt.Sprintf("%d %s", i+1, size) || m.Resp != "+OK "+size+" octets" {
			t.Errorf("message %d: %d octets retrieved, LIST %q, RETR %q", i+1, len(m.Text), r.List[i], m.Resp)
		}
		total += len(m.Text)
	}
	if r.Stat[1] != total {
		t.Errorf("STAT octets %d, retrieved %d", r.Stat[1], total)
	}
	if n := len(r.Top); n < 3 || r.Top[n-2] != "" || r.Top[n-1] != ".leading dot" {
		t.Errorf("TOP 2 1: %q", r.Top)
	}
	// Deleted at QUIT; the others keep their UIDLs under new numbers.
	if r.Dele != "+OK Message 1 deleted" || !strings.HasPrefix(r.Quit, "+OK") {
		t.Errorf("DELE %q, QUIT %q", r.Dele, r.Quit)
	}
	if len(r.StatAfter) != 2 || r.StatAfter[0] != poplibMessages-1 || r.StatAfter[1] != total-len(r.Retr[0].Text) {
		t.Errorf("STAT after deleting one: %v", r.StatAfter)
	}
	var ids, idsAfter []string
	for _, l := range r.UIDL[1:] {
		ids = append(ids, strings.Fields(l)[1])
	}
	for _, l := range r.UIDLAfter {
		idsAfter = append(idsAfter, strings.Fields(l)[1])
	}
	if !slices.Equal(ids, idsAfter) {
		t.Errorf("UIDLs changed: before %v, after %v", r.UIDL, r.UIDLAfter)
	}
	if r.BadPass != "-ERR [AUTH] Authentication failed" {
		t.Errorf("wrong password: %q", r.BadPass)
	}
}

// fetchmailEnv is one fetchmail setup: a HOME with .fetchmailrc, an MDA
// that stores each message as a file, and the UIDL tracking file.
type fetchmailEnv struct {
	bin, rc, idfile, outDir string
	env                     []string
}

func newFetchmail(t *testing.T, p *loftProc, user string) *fetchmailEnv {
	bin := needClient(t, "fetchmail")
	home := filepath.Join(p.Dir, "home")
	f := &fetchmailEnv{
		bin:    bin,
		rc:     filepath.Join(home, ".fetchmailrc"),
		idfile: filepath.Join(home, ".fetchids"),
		outDir: filepath.Join(p.Dir, "fetched"),
	}
	for _, d := range []string{home, f.outDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	mda := filepath.Join(home, "mda.sh")
	script := fmt.Sprintf("#!/bin/sh\nf=$(mktemp %q) && cat > \"$f\"\n", filepath.Join(f.outDir, "msg.XXXXXXXX"))
	if err := os.WriteFile(mda, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(p.Addrs["pop3"], "127.0.0.1:")
	// STLS is required (sslproto) and the certificate checked against
	// Loft's self-signed one, for the name it has (fetchmail does not
	// read IP addresses in certificates).
	rc := fmt.Sprintf(`set no syslog
poll 127.0.0.1 protocol POP3 port %s auth password timeout 20
    user %q there with password %q
    sslproto 'TLS1.2+' sslcertck sslcertfile %q sslcommonname localhost
    mda %q
`, port, user, pop3Password, filepath.Join(p.DataDir, "tls", "selfsigned.crt"), mda)
	if err := os.WriteFile(f.rc, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "HOME=") && !strings.HasPrefix(e, "FETCHMAILHOME=") {
			f.env = append(f.env, e)
		}
	}
	f.env = append(f.env, "HOME="+home)
	return f
}

// run runs fetchmail once with extra flags and returns how many messages
// it handed to the MDA. Exit status 0 is "got mail", 1 "no mail".
func (f *fetchmailEnv) run(t *testing.T, flags ...string) int {
	t.Helper()
	before := f.fetched(t)
	args := append([]string{"--fetchmailrc", f.rc, "--idfile", f.idfile, "--nosyslog", "--nodetach", "-v"}, flags...)
	out, code := runClient(t, clientTimeout, f.env, f.bin, args...)
	if code != 0 && code != 1 {
		t.Fatalf("fetchmail %v: status %d:\n%s", flags, code, out)
	}
	n := f.fetched(t) - before
	if (code == 0) != (n > 0) {
		t.Fatalf("fetchmail %v: status %d but %d messages delivered:\n%s", flags, code, n, out)
	}
	return n
}

func (f *fetchmailEnv) fetched(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(f.outDir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestInteropFetchmailKeepThenDelete(t *testing.T) {
	p := startLoft(t, "")
	const user = "bob@" + testDomain
	p.addAccount(t, user, pop3Password)
	for n := 1; n <= 3; n++ {
		p.deliverLMTP(t, testMessage(n), user)
	}
	f := newFetchmail(t, p, user)

	if n := f.run(t, "--keep", "--uidl"); n != 3 {
		t.Fatalf("first run in keep mode fetched %d messages, want 3", n)
	}
	if n := f.run(t, "--keep", "--uidl"); n != 0 {
		t.Fatalf("second run in keep mode fetched %d messages, want 0", n)
	}
	p.deliverLMTP(t, testMessage(4), user)
	if n := f.run(t, "--keep", "--uidl"); n != 1 {
		t.Fatalf("third run after one delivery fetched %d messages, want 1", n)
	}
	if msgs, _ := p.accountUsage(t, user); msgs != "4" {
		t.Fatalf("keep mode left %s messages, want 4", msgs)
	}

	// Without keep, everything is fetched and deleted: the mailbox is
	// empty and its usage back to zero.
	if n := f.run(t, "--all", "--nokeep"); n != 4 {
		t.Fatalf("run without keep fetched %d messages, want 4", n)
	}
	if msgs, usage := p.accountUsage(t, user); msgs != "0" || usage != "0" {
		t.Fatalf("after a run without keep: %s messages, usage %s; want 0, 0", msgs, usage)
	}
	if n := f.run(t, "--all", "--nokeep"); n != 0 {
		t.Fatalf("run on the empty mailbox fetched %d messages", n)
	}

	// What fetchmail handed on is the messages themselves.
	entries, _ := os.ReadDir(f.outDir)
	var subjects []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(f.outDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if s, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "Subject: "); ok {
				subjects = append(subjects, s)
			}
		}
		// fetchmail hands the MDA LF line endings.
		if text := strings.ReplaceAll(string(b), "\r\n", "\n"); strings.Contains(text, "Subject: interop 2") &&
			!strings.Contains(text, "\n.leading dot\n..two dots\n") {
			t.Errorf("fetchmail got message 2 with its dot lines changed:\n%q", b)
		}
	}
	slices.Sort(subjects)
	want := []string{"interop 1", "interop 1", "interop 2", "interop 2", "interop 3", "interop 3", "interop 4", "interop 4"}
	if !slices.Equal(subjects, want) {
		t.Errorf("fetched subjects %v, want %v", subjects, want)
	}
}
