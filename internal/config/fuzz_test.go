package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: whatever the file holds, Load returns a valid Config or a
// one-line error naming the file; it never panics. Seeds (testdata/fuzz)
// are real configurations: the DESIGN.md sample, the docs/CONFIG.md
// example, and typical ACME and limits setups.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"hostname = \"mail.example.org\"\ndomains = [\"example.org\"]\ndata_dir = \"/var/lib/loft\"\n[listen]\nsmtp = \":25\"\nimap = \":143\"\n[tls]\ncert_file = \"\"\nkey_file = \"\"\n[auth]\nplaintext = \"loopback\"\n[quota]\ndefault = \"200MB\"\n[pop3]\nexclusive = false\n",
		"[tls]\nacme = true\nacme_email = \"admin@example.org\"\nacme_hosts = [\"mail.example.org\"]\nacme_http_port = 0\n",
		"[limits]\nmax_connections = 500\nmax_connections_per_ip = 100\nidle_timeout = \"20m\"\ncommand_timeout = \"30s\"\nmax_command_line = \"8KiB\"\n",
		"[smtp]\nmax_message_size = \"1.5GiB\"\nmax_line_length = 1000\n[log]\nformat = \"json\"\n",
		"domains = [\"A.EXAMPLE.\", \"a.example\"]\n[auth]\nblock_after = 0\nblock_for = \"1h30m\"\n",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(dir, "loft.toml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "config "+path) {
				t.Fatalf("error is not one line naming the file: %q", msg)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load returned a config that does not validate: %v", err)
		}
	})
}
