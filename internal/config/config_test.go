package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// writeConfig writes a config file into a fresh temp dir and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "loft.toml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaultIsQuickstart(t *testing.T) {
	c := Default()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Hostname: "localhost",
		Domains:  []string{"localhost"},
		DataDir:  filepath.Join(wd, "loft-data"),
		Listen: Listen{
			SMTP:  "127.0.0.1:2525",
			LMTP:  "127.0.0.1:2424",
			IMAP:  "127.0.0.1:1143",
			IMAPS: "127.0.0.1:1993",
			POP3:  "127.0.0.1:1110",
			POP3S: "127.0.0.1:1995", Metrics: "127.0.0.1:9465",
		},
		TLS:    TLS{ACMEHTTPPort: 80, ACMETLSPort: 443},
		Auth:   Auth{Plaintext: "loopback", BlockAfter: 30, BlockFor: 15 * time.Minute},
		Quota:  Quota{Default: 200_000_000},
		SMTP:   SMTP{MaxMessageSize: 64_000_000, MaxRecipients: 100, MaxLineLength: 64_000},
		POP3:   POP3{Exclusive: false, MarkSeen: true},
		Limits: defaultLimits,
		Log:    Log{Format: "text", Level: "info"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

// defaultLimits are the documented defaults of [limits].
var defaultLimits = Limits{
	MaxConnections:          10000,
	MaxConnectionsPerIP:     100,
	MaxSessionsPerAccountIP: 20,
	MaxCommandLine:          65536,
	MaxAuthAttempts:         3,
	IdleTimeout:             0,
	CommandTimeout:          2 * time.Minute,
	MaxMessagesPerSession:   1000,
}

// TestLoadEmptyFileListensNowhere checks that a config file starts from the
// production defaults: a listener not named in the file is off.
func TestLoadEmptyFileListensNowhere(t *testing.T) {
	path := writeConfig(t, "# nothing\n")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != (Listen{}) {
		t.Errorf("Listen = %+v, want all off", c.Listen)
	}
	if c.Path != path {
		t.Errorf("Path = %q, want %q", c.Path, path)
	}
	if c.DataDir != "/var/lib/loft" {
		t.Errorf("DataDir = %q, want /var/lib/loft", c.DataDir)
	}
	if c.Hostname == "" || !reflect.DeepEqual(c.Domains, []string{strings.ToLower(c.Hostname)}) {
		t.Errorf("Hostname %q, Domains %q: want domains = [hostname]", c.Hostname, c.Domains)
	}
	if c.Auth != (Auth{Plaintext: PlaintextLoopback, BlockAfter: 30, BlockFor: 15 * time.Minute}) ||
		c.Limits != defaultLimits || c.TLS.ACME || c.TLS.ACMEHTTPPort != 80 || c.TLS.ACMETLSPort != 443 ||
		c.Quota.Default != 200_000_000 ||
		c.SMTP != (SMTP{MaxMessageSize: 64_000_000, MaxRecipients: 100, MaxLineLength: 64_000}) ||
		c.POP3 != (POP3{MarkSeen: true}) || c.Log != (Log{Format: "text", Level: "info"}) {
		t.Errorf("defaults wrong: %+v", c)
	}
}

func TestLoadEveryKey(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	key := filepath.Join(dir, "key.pem")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := writeConfig(t, `
hostname = "Mail.Example.ORG"
domains  = ["Example.org", "example.net.", "example.org"]
data_dir = "/srv/loft"

[listen]
smtp       = ":25"
lmtp       = "127.0.0.1:24"
imap       = "[::1]:143"
imaps      = "0.0.0.0:993"
pop3       = "localhost:110"
pop3s      = ":995"
submission = ":587"
metrics    = "127.0.0.1:9465"

[tls]
cert_file = "`+cert+`"
key_file  = "`+key+`"

[auth]
plaintext   = "never"
block_after = 10
block_for   = "1h"

[quota]
default = "1.5GiB"

[limits]
max_connections             = 500
max_connections_per_ip      = 200
max_sessions_per_account_ip = 5
max_command_line            = "8KiB"
max_auth_attempts           = 5
idle_timeout                = "20m"
command_timeout             = "30s"
max_messages_per_session    = 50

[smtp]
max_message_size = 10485760
max_recipients   = 500
max_line_length  = "10KB"

[pop3]
exclusive = true
mark_seen = false

[log]
format = "json"
level  = "debug"
`)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Hostname: "Mail.Example.ORG",
		Domains:  []string{"example.org", "example.net"},
		DataDir:  "/srv/loft",
		Listen: Listen{
			SMTP: ":25", LMTP: "127.0.0.1:24", IMAP: "[::1]:143", IMAPS: "0.0.0.0:993",
			POP3: "localhost:110", POP3S: ":995", Submission: ":587", Metrics: "127.0.0.1:9465",
		},
		TLS:  TLS{CertFile: cert, KeyFile: key, ACMEHTTPPort: 80, ACMETLSPort: 443},
		Auth: Auth{Plaintext: "never", BlockAfter: 10, BlockFor: time.Hour},
		Limits: Limits{
			MaxConnections: 500, MaxConnectionsPerIP: 200, MaxSessionsPerAccountIP: 5, MaxCommandLine: 8192,
			MaxAuthAttempts: 5, IdleTimeout: 20 * time.Minute, CommandTimeout: 30 * time.Second, MaxMessagesPerSession: 50,
		},
		Quota: Quota{Default: 1_610_612_736},
		SMTP:  SMTP{MaxMessageSize: 10_485_760, MaxRecipients: 500, MaxLineLength: 10_000},
		POP3:  POP3{Exclusive: true, MarkSeen: false},
		Log:   Log{Format: "json", Level: "debug"},
		Path:  path,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", c, want)
	}
}

func TestLoadSizesAcceptUnlimitedAndIntegers(t *testing.T) {
	c, err := Load(writeConfig(t, "[quota]\ndefault = \"unlimited\"\n[smtp]\nmax_message_size = \"unlimited\"\nmax_line_length = 2000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Quota.Default != Unlimited || c.SMTP.MaxMessageSize != Unlimited || c.SMTP.MaxLineLength != 2000 {
		t.Errorf("got quota %d, max size %d, line %d", c.Quota.Default, c.SMTP.MaxMessageSize, c.SMTP.MaxLineLength)
	}
}

// TestLoadRelativePathsFollowWorkingDirectory documents that data_dir and
// the certificate paths are relative to the working directory, not to the
// config file, and come back absolute.
func TestLoadRelativePathsFollowWorkingDirectory(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	if err := os.WriteFile("c.pem", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("k.pem", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(writeConfig(t, "data_dir = \"data\"\n[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(wd, "data"); c.DataDir != want {
		t.Errorf("DataDir = %q, want %q", c.DataDir, want)
	}
	if want := filepath.Join(wd, "c.pem"); c.TLS.CertFile != want {
		t.Errorf("CertFile = %q, want %q", c.TLS.CertFile, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, content, want string // want: error after "config PATH: "
	}{
		{"unknown key", "[quota]\ndefualt = \"1GB\"\n", `unknown key "quota.defualt"`},
		{"first unknown key in file order", "zzz = 1\n[quota]\ndefault = \"1GB\"\naaa = 2\n", `unknown key "zzz"`},
		{"unknown table", "[qouta]\ndefault = \"1GB\"\n", `unknown key "qouta"`},
		{"keys are case-sensitive", "Data_Dir = \"/x\"\n", `unknown key "Data_Dir"`},
		{"dotted top-level key", "\"listen.imap\" = \":143\"\n", `unknown key "\"listen.imap\""`},
		{"syntax error", "hostname = \"a\"\n\ndata_dir = \n", `line 3: expected value but found '\n' instead`},
		{"duplicate key", "hostname = \"a\"\nhostname = \"b\"\n", `line 2: Key 'hostname' has already been defined.`},
		{"bad size", "[quota]\ndefault = \"lots\"\n", `key "quota.default": size "lots" is not a number with an optional unit, like "200MB", "1.5GiB" or "unlimited"`},
		{"bad unit", "[quota]\ndefault = \"2 parsecs\"\n", `key "quota.default": size "2 parsecs" has unknown unit "parsecs" (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`},
		{"negative size", "[quota]\ndefault = \"-1MB\"\n", `key "quota.default": size "-1MB" is negative`},
		{"negative integer size", "[quota]\ndefault = -1\n", `key "quota.default": size -1 is negative (for no limit write "unlimited")`},
		{"float size", "[smtp]\nmax_message_size = 1.5\n", `key "smtp.max_message_size": want a size like "200MB" or a number of bytes, got float 1.5`},
		{"zero message size", "[smtp]\nmax_message_size = 0\n", `key "smtp.max_message_size": 0 is not a positive size or "unlimited"`},
		{"address without port", "[listen]\nimap = \"143\"\n", `key "listen.imap": "143" is not host:port`},
		{"address as integer", "[listen]\nimap = 143\n", `key "listen.imap": want a string, got integer 143`},
		{"named port", "[listen]\npop3 = \":pop3\"\n", `key "listen.pop3": ":pop3": port "pop3" is not a number 0-65535`},
		{"port too large", "[listen]\nsmtp = \":65536\"\n", `key "listen.smtp": ":65536": port "65536" is not a number 0-65535`},
		{"host name as host", "[listen]\nimaps = \"mail.example.org:993\"\n", `key "listen.imaps": "mail.example.org:993": host "mail.example.org" is not empty (all addresses), an IP address or "localhost"`},
		{"two listeners one address", "[listen]\nimap = \":143\"\npop3 = \":143\"\n", `key "listen.pop3": ":143" is also the address of listen.imap`},
		{"listen not a table", "listen = \":143\"\n", `key "listen": want a table ([listen]), got string ":143"`},
		{"bad plaintext", "[auth]\nplaintext = \"sometimes\"\n", `key "auth.plaintext": "sometimes" is not one of "never", "loopback", "always"`},
		{"plaintext as bool", "[auth]\nplaintext = true\n", `key "auth.plaintext": want a string, got boolean true`},
		{"cert without key", "[tls]\ncert_file = \"/etc/ssl/x.pem\"\n", `key "tls.key_file": missing: tls.cert_file needs its key_file`},
		{"key without cert", "[tls]\nkey_file = \"/etc/ssl/x.key\"\n", `key "tls.cert_file": missing: tls.key_file needs its cert_file`},
		{"unreadable cert", "[tls]\ncert_file = \"/nonexistent/c.pem\"\nkey_file = \"/nonexistent/k.pem\"\n", `key "tls.cert_file": cannot read /nonexistent/c.pem: no such file or directory`},
		{"bad domain", "domains = [\"example.org\", \"exa mple.org\"]\n", `key "domains": "exa mple.org" is not a domain name: ' ' is not a letter, digit or '-'`},
		{"IP as domain", "domains = [\"192.0.2.1\"]\n", `key "domains": "192.0.2.1" is an IP address, not a domain name`},
		{"no domains", "domains = []\n", `key "domains": list at least one mail domain`},
		{"domains as string", "domains = \"example.org\"\n", `key "domains": want an array of strings like ["example.org"], got string "example.org"`},
		{"bad hostname", "hostname = \"-mail.example.org\"\n", `key "hostname": "-mail.example.org" is not a domain name: a label starts or ends with '-'`},
		{"empty data_dir", "data_dir = \"\"\n", `key "data_dir": must not be empty`},
		{"exclusive as string", "[pop3]\nexclusive = \"yes\"\n", `key "pop3.exclusive": want true or false, got string "yes"`},
		{"recipients zero", "[smtp]\nmax_recipients = 0\n", `key "smtp.max_recipients": 0 is not between 1 and 100000`},
		{"line length too short", "[smtp]\nmax_line_length = 998\n", `key "smtp.max_line_length": 998 is not between 1000 (RFC 5321) and 16777216 bytes (a line is held in memory whole)`},
		{"line length unlimited", "[smtp]\nmax_line_length = \"unlimited\"\n", `key "smtp.max_line_length": unlimited is not between 1000 (RFC 5321) and 16777216 bytes (a line is held in memory whole)`},
		{"acme with cert", "[tls]\nacme = true\ncert_file = \"/etc/hosts\"\nkey_file = \"/etc/hosts\"\n", `key "tls.acme": true together with tls.cert_file: choose one`},
		{"acme directory http", "[tls]\nacme = true\nacme_directory = \"http://ca.example/dir\"\n", `key "tls.acme_directory": "http://ca.example/dir" is not an https:// URL`},
		{"acme bad host", "[tls]\nacme = true\nacme_hosts = [\"mail..example.org\"]\n", `key "tls.acme_hosts": "mail..example.org" is not a domain name: labels are 1 to 63 characters`},
		{"acme no challenge", "[tls]\nacme = true\nacme_http_port = 0\nacme_tls_port = 0\n", `key "tls.acme_tls_port": 0 together with acme_http_port = 0 leaves no way to answer the CA`},
		{"acme port", "[tls]\nacme = true\nacme_http_port = 70000\n", `key "tls.acme_http_port": 70000 is not a port 0-65535`},
		{"acme as string", "[tls]\nacme = \"yes\"\n", `key "tls.acme": want true or false, got string "yes"`},
		{"block negative", "[auth]\nblock_after = -1\n", `key "auth.block_after": -1 is negative (0 turns blocking off)`},
		{"block_for not duration", "[auth]\nblock_for = 15\n", `key "auth.block_for": want a duration like "10m" or "30s", got integer 15`},
		{"block_for bad", "[auth]\nblock_for = \"15 minutes\"\n", `key "auth.block_for": "15 minutes" is not a duration like "10m", "30s" or "1h30m"`},
		{"limits zero connections", "[limits]\nmax_connections = 0\n", `key "limits.max_connections": 0 is not between 1 and 1048576`},
		{"limits per ip above total", "[limits]\nmax_connections = 50\n", `key "limits.max_connections_per_ip": 100 is more than limits.max_connections (50)`},
		{"limits command line", "[limits]\nmax_command_line = 100\n", `key "limits.max_command_line": 100 is not between 1000 and 16777216 bytes (a line is held in memory whole)`},
		{"limits auth attempts", "[limits]\nmax_auth_attempts = 0\n", `key "limits.max_auth_attempts": 0 is not between 1 and 100`},
		{"limits idle short", "[limits]\nidle_timeout = \"1s\"\n", `key "limits.idle_timeout": 1s is shorter than 10s (0 for the protocols' own defaults)`},
		{"limits negative timeout", "[limits]\ncommand_timeout = \"-1m\"\n", `key "limits.command_timeout": "-1m" is negative`},
		{"limits as value", "limits = 3\n", `key "limits": want a table ([limits]), got integer 3`},
		{"bad log format", "[log]\nformat = \"xml\"\n", `key "log.format": "xml" is not one of "text", "json"`},
		{"bad log level", "[log]\nlevel = \"verbose\"\n", `key "log.level": "verbose" is not one of "debug", "info", "warn", "error"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.content)
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			if want := "config " + path + ": " + tt.want; err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	if want := "config " + path + ": open: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	if want := "config " + dir + ": read: is a directory"; err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	path := writeConfig(t, "")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := "config " + path + ": open: permission denied"; err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
}

func TestValidateWithoutPath(t *testing.T) {
	c := Default()
	c.Listen.IMAP = "143"
	if err := c.Validate(); err == nil || err.Error() != `config: key "listen.imap": "143" is not host:port` {
		t.Errorf("Validate = %v", err)
	}
}

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"} {
		if got := (Log{Level: level}).SlogLevel().String(); got != want {
			t.Errorf("SlogLevel(%q) = %s, want %s", level, got, want)
		}
	}
}

// TestEveryKeyIsDocumented keeps docs/CONFIG.md in step with the keys table.
func TestEveryKeyIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	for key := range keys {
		table, name, found := strings.Cut(key, ".")
		if !found {
			table, name = "", key
		}
		// The reference lists each key as `name` under a "## [table]" heading
		// (top-level keys under "## Top-level keys").
		section := "## Top-level keys"
		if table != "" {
			section = "## [" + table + "]"
		}
		i := strings.Index(string(doc), section)
		if i < 0 {
			t.Errorf("docs/CONFIG.md has no section %q for key %q", section, key)
			continue
		}
		rest := string(doc[i+len(section):])
		if j := regexp.MustCompile(`\n## `).FindStringIndex(rest); j != nil {
			rest = rest[:j[0]]
		}
		if !strings.Contains(rest, "`"+name+"`") {
			t.Errorf("docs/CONFIG.md section %q does not document `%s`", section, name)
		}
	}
}

// TestLoadDesignExample loads the sample of DESIGN.md §4, which tools rely on.
func TestLoadDesignExample(t *testing.T) {
	c, err := Load(writeConfig(t, `
hostname = "mail.example.org"   # greeting and certificate name
domains  = ["example.org"]      # mail for these domains is local
data_dir = "/var/lib/loft"

[listen]                        # an absent or empty address turns that listener off
smtp  = ":25"
lmtp  = "127.0.0.1:24"
imap  = ":143"
imaps = ":993"
pop3  = ":110"
pop3s = ":995"

[tls]                           # cert_file + key_file, or acme, or neither: self-signed
cert_file = ""
key_file  = ""

[auth]
plaintext = "loopback"          # "never", "loopback" or "always": password auth without TLS

[quota]
default = "200MB"

[pop3]
exclusive = false
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.Submission != "" || c.Listen.IMAPS != ":993" || c.TLS.CertFile != "" || c.TLS.ACME || c.Quota.Default != 200_000_000 {
		t.Errorf("got %+v", c)
	}
}
