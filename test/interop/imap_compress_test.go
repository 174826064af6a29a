package interop

// COMPRESS=DEFLATE (RFC 4978) with Python's imaplib and zlib: imaplib has
// no COMPRESS of its own, so the script switches the connection to raw
// deflate (wbits -15) after the OK, as a client library would, then
// selects, fetches, appends, and idles while another connection appends;
// once over IMAPS too, compression inside TLS.

import (
	"encoding/json"
	"strings"
	"testing"
)

const imaplibCompressScript = `
import imaplib, json, ssl, sys, zlib
host, port = sys.argv[1].rsplit(":", 1)
sport = sys.argv[2].rsplit(":", 1)[1]
user, password = sys.argv[3], sys.argv[4]
out = {}

class Deflating:
    """Mixed into imaplib.IMAP4: after COMPRESS DEFLATE, every byte sent
    is deflated (sync-flushed per write) and every byte read inflated."""
    compressed = False
    raw_in = 0

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ != "OK":
            raise SystemExit("COMPRESS failed: %r %r" % (typ, data))
        self._z = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._unz = zlib.decompressobj(-15)
        self._buf = b""
        self.compressed = True
        return data[0].decode()

    def send(self, data):
        if self.compressed:
            data = self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)

    def _fill(self):
        # self.file may already hold deflated bytes read with the OK.
        chunk = self.file.read1(65536)
        if not chunk:
            raise self.abort("connection closed")
        self.raw_in += len(chunk)
        self._buf += self._unz.decompress(chunk)

    def read(self, size):
        if not self.compressed:
            return super().read(size)
        while len(self._buf) < size:
            self._fill()
        data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def readline(self):
        if not self.compressed:
            return super().readline()
        while b"\n" not in self._buf:
            self._fill()
        i = self._buf.index(b"\n") + 1
        line, self._buf = self._buf[:i], self._buf[i:]
        return line

imaplib.Commands["COMPRESS"] = ("AUTH", "SELECTED")
class Z(Deflating, imaplib.IMAP4): pass
class ZS(Deflating, imaplib.IMAP4_SSL): pass

def ok(r):
    typ, data = r
    if typ != "OK":
        raise SystemExit("command failed: %r %r" % (typ, data))
    return data

m = Z(host, int(port))
out["caps"] = sorted(m.capabilities)
ok(m.login(user, password))
out["compress"] = m.compress()
out["exists"] = int(ok(m.select("INBOX"))[0])
data = ok(m.fetch("1:*", "(UID BODY.PEEK[HEADER])"))
out["headers"] = [d[1].decode() for d in data if isinstance(d, tuple)]
body = b"From: py@example.test\r\nSubject: compressed append\r\n\r\n" + b"line of text\r\n" * 500
out["append"] = ok(m.append("INBOX", None, None, body))[0].decode()
out["body"] = ok(m.fetch("4", "(BODY.PEEK[])"))[0][1].decode()

# IDLE by hand: another connection's APPEND is pushed through the
# deflate stream while this one waits.
m.send(b"i1 IDLE\r\n")
out["idle"] = m.readline().decode().strip()
other = imaplib.IMAP4(host, int(port))
ok(other.login(user, password))
ok(other.append("INBOX", None, None, b"Subject: pushed\r\n\r\nhi\r\n"))
other.logout()
out["push"] = m.readline().decode().strip()
out["push_recent"] = m.readline().decode().strip()
m.send(b"DONE\r\n")
out["idle_done"] = m.readline().decode().strip()
out["raw_in"] = m.raw_in
m.logout()

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ZS(host, int(sport), ssl_context=ctx)
ok(s.login(user, password))
out["tls_compress"] = s.compress()
out["tls_exists"] = int(ok(s.select("INBOX", readonly=True))[0])
s.logout()
print(json.dumps(out))
`

func TestInteropIMAPPythonCompress(t *testing.T) {
	python := needClient(t, "python3")
	p := startLoft(t, "")
	const user, pass = "zip@example.test", "zip password"
	p.addAccount(t, user, pass)
	for i := 1; i <= 3; i++ {
		p.deliverLMTP(t, testMessage(i), user)
	}
	out, code := runClient(t, imapTimeout, nil, python, "-c", imaplibCompressScript, p.Addrs["imap"], p.Addrs["imaps"], user, pass)
	if code != 0 {
		t.Fatalf("imaplib script failed (%d):\n%s", code, out)
	}
	var res struct {
		Caps        []string
		Compress    string
		Exists      int
		Headers     []string
		Append      string
		Body        string
		Idle        string
		Push        string
		PushRecent  string `json:"push_recent"`
		IdleDone    string `json:"idle_done"`
		RawIn       int    `json:"raw_in"`
		TLSCompress string `json:"tls_compress"`
		TLSExists   int    `json:"tls_exists"`
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
	check("capability", strings.Contains(strings.Join(res.Caps, " "), "COMPRESS=DEFLATE"), res.Caps)
	check("compress", res.Compress == "DEFLATE active", res.Compress)
	check("exists", res.Exists == 3, res.Exists)
	check("headers", len(res.Headers) == 3 && strings.Contains(res.Headers[2], "Subject: interop 3"), res.Headers)
	check("append", strings.HasSuffix(res.Append, " 4] APPEND completed"), res.Append)
	check("body", strings.HasSuffix(res.Body, strings.Repeat("line of text\r\n", 500)), len(res.Body))
	check("idle", res.Idle == "+ idling", res.Idle)
	check("push", res.Push == "* 5 EXISTS", res.Push)
	// All five are \Recent in this session: it selected the first three,
	// appended the fourth and was the first told of the fifth.
	check("push recent", res.PushRecent == "* 5 RECENT", res.PushRecent)
	check("idle done", res.IdleDone == "i1 OK IDLE completed", res.IdleDone)
	// 7 KB of repeated lines came back in far fewer bytes.
	check("compressed", res.RawIn > 0 && res.RawIn < 3000, res.RawIn)
	check("tls compress", res.TLSCompress == "DEFLATE active", res.TLSCompress)
	check("tls exists", res.TLSExists == 5, res.TLSExists)
}
