package interop

// Python's imaplib against `loft serve`: plain IMAP, STARTTLS and IMAPS,
// LIST, SELECT, SEARCH, FETCH, STORE, APPEND, CREATE, COPY, EXPUNGE.

import (
	"encoding/json"
	"strings"
	"testing"
)

const imaplibScript = `
import imaplib, json, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
sport = sys.argv[2].rsplit(":", 1)[1]
user, password = sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = {}

def ok(r):
    typ, data = r
    if typ != "OK":
        raise SystemExit("command failed: %r %r" % (typ, data))
    return data

m = imaplib.IMAP4(host, int(port))
out["caps"] = sorted(m.capabilities)
ok(m.login(user, password))
out["list"] = [d.decode() for d in ok(m.list())]
out["exists"] = int(ok(m.select("INBOX"))[0])
out["all"] = ok(m.search(None, "ALL"))[0].decode()
data = ok(m.fetch("2", "(UID RFC822.SIZE BODY[])"))
out["body2"] = data[0][1].decode()
out["flags_after_fetch"] = ok(m.fetch("2", "(FLAGS)"))[0].decode()
ok(m.store("1", "+FLAGS", "(\\Flagged)"))
out["flagged"] = ok(m.uid("SEARCH", None, "FLAGGED"))[0].decode()
draft = b"From: py@example.test\r\nSubject: from imaplib\r\n\r\ndraft body\r\n"
out["append"] = ok(m.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(1700000000), draft))[0].decode()
ok(m.create("Folder/Sub"))
out["copy"] = ok(m.copy("1:2", "Folder/Sub"))[0].decode()
ok(m.store("3", "+FLAGS", "(\\Deleted)"))
out["expunge"] = [d.decode() for d in ok(m.expunge())]
out["status"] = ok(m.status("Folder/Sub", "(MESSAGES UIDNEXT)"))[0].decode()
m.logout()

s = imaplib.IMAP4_SSL(host, int(sport), ssl_context=ctx)
ok(s.login(user, password))
out["imaps_exists"] = int(ok(s.select("INBOX", readonly=True))[0])
s.logout()

t = imaplib.IMAP4(host, int(port))
ok(t.starttls(ssl_context=ctx))
ok(t.login(user, password))
out["starttls_drafts"] = int(ok(t.select("Drafts"))[0])
out["draft"] = ok(t.fetch("1", "(FLAGS BODY.PEEK[])"))[0][1].decode()
t.logout()
print(json.dumps(out))
`

func TestInteropIMAPPythonImaplib(t *testing.T) {
	python := needClient(t, "python3")
	p := startLoft(t, "")
	const user, pass = "py@example.test", "py password"
	p.addAccount(t, user, pass)
	for i := 1; i <= 3; i++ {
		p.deliverLMTP(t, testMessage(i), user)
	}
	out, code := runClient(t, imapTimeout, nil, python, "-c", imaplibScript, p.Addrs["imap"], p.Addrs["imaps"], user, pass)
	if code != 0 {
		t.Fatalf("imaplib script failed (%d):\n%s", code, out)
	}
	var res struct {
		Caps            []string
		List            []string
		Exists          int
		All             string
		Body2           string
		FlagsAfterFetch string `json:"flags_after_fetch"`
		Flagged         string
		Append          string
		Copy            string
		Expunge         []string
		Status          string
		ImapsExists     int `json:"imaps_exists"`
		StarttlsDrafts  int `json:"starttls_drafts"`
		Draft           string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("script output: %v\n%s", err, out)
	}
	check := func(what string, ok bool, got any) {
		t.Helper()
		if !ok {
			t.Errorf("%s: got %#v", what, got)
		}
	}
	check("capabilities", strings.Contains(strings.Join(res.Caps, " "), "IMAP4REV2") && strings.Contains(strings.Join(res.Caps, " "), "STARTTLS"), res.Caps)
	check("list", len(res.List) == 6 && res.List[0] == `(\HasNoChildren) "/" "INBOX"` && res.List[4] == `(\HasNoChildren \Sent) "/" "Sent"`, res.List)
	check("exists", res.Exists == 3, res.Exists)
	check("search", res.All == "1 2 3", res.All)
	check("body", strings.HasSuffix(res.Body2, testMessage(2)), res.Body2) // after the Received header
	check("seen after fetch", strings.Contains(res.FlagsAfterFetch, `\Seen`), res.FlagsAfterFetch)
	check("uid search", res.Flagged == "1", res.Flagged)
	check("append", strings.HasPrefix(res.Append, "[APPENDUID ") && strings.HasSuffix(res.Append, " 1] APPEND completed"), res.Append)
	check("copy", strings.Contains(res.Copy, " 1:2 1:2] COPY completed"), res.Copy)
	check("expunge", len(res.Expunge) == 1 && res.Expunge[0] == "3", res.Expunge)
	check("status", res.Status == `"Folder/Sub" (MESSAGES 2 UIDNEXT 3)`, res.Status)
	check("imaps", res.ImapsExists == 2, res.ImapsExists)
	check("starttls", res.StarttlsDrafts == 1, res.StarttlsDrafts)
	check("draft", res.Draft == "From: py@example.test\r\nSubject: from imaplib\r\n\r\ndraft body\r\n", res.Draft)
}
