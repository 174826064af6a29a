// Validation of a Config's values: addresses, domain names, enumerations,
// ranges and the readability of the certificate files.

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Ranges of the SMTP limits.
const (
	// minLineLength is RFC 5321 §4.5.3.1.6: a server must accept text lines
	// of 1000 octets including CRLF.
	minLineLength = 1000
	// maxLineLengthLimit bounds max_line_length: each SMTP connection may
	// hold a line this long in memory.
	maxLineLengthLimit = 16 << 20
	// maxRecipientsLimit bounds max_recipients: the recipients of a
	// transaction are held in memory and each costs a store lookup.
	maxRecipientsLimit = 100000
	// maxCommandLineLimit bounds limits.max_command_line, for the same
	// reason as maxLineLengthLimit.
	maxCommandLineLimit = 16 << 20
	// minCommandLine: an IMAP LOGIN with a long address and password, or
	// a short UID set, must fit.
	minCommandLine = 1000
)

// Validate checks c and returns the first problem as one line naming the
// file (c.Path) and the key. Load calls it; call it again after changing a
// Config in code (for example from command-line flags). It reads the
// certificate files to check that they are readable.
func (c *Config) Validate() error {
	if err := checkDomain(c.Hostname); err != nil {
		return c.keyError("hostname", "%v", err)
	}
	if len(c.Domains) == 0 {
		return c.keyError("domains", "list at least one mail domain")
	}
	for _, d := range c.Domains {
		if err := checkDomain(d); err != nil {
			return c.keyError("domains", "%v", err)
		}
		if d != strings.ToLower(d) {
			return c.keyError("domains", "%q is not lower-case", d)
		}
	}
	if c.DataDir == "" {
		return c.keyError("data_dir", "must not be empty")
	}
	if err := c.validateListen(); err != nil {
		return err
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	switch c.Auth.Plaintext {
	case PlaintextNever, PlaintextLoopback, PlaintextAlways:
	default:
		return c.keyError("auth.plaintext", "%q is not one of \"never\", \"loopback\", \"always\"", c.Auth.Plaintext)
	}
	if c.Auth.BlockAfter < 0 {
		return c.keyError("auth.block_after", "%d is negative (0 turns blocking off)", c.Auth.BlockAfter)
	}
	if c.Auth.BlockAfter > 0 && c.Auth.BlockFor < time.Second {
		return c.keyError("auth.block_for", "%v is shorter than a second", c.Auth.BlockFor)
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if c.Quota.Default < 0 && c.Quota.Default != Unlimited {
		return c.keyError("quota.default", "%d is negative", c.Quota.Default)
	}
	if c.SMTP.MaxMessageSize <= 0 && c.SMTP.MaxMessageSize != Unlimited {
		return c.keyError("smtp.max_message_size", "%d is not a positive size or \"unlimited\"", c.SMTP.MaxMessageSize)
	}
	if err := checkMaxRecipients(int64(c.SMTP.MaxRecipients)); err != nil {
		return c.keyError("smtp.max_recipients", "%v", err)
	}
	if err := checkMaxLineLength(int64(c.SMTP.MaxLineLength)); err != nil {
		return c.keyError("smtp.max_line_length", "%v", err)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return c.keyError("log.format", "%q is not one of \"text\", \"json\"", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return c.keyError("log.level", "%q is not one of \"debug\", \"info\", \"warn\", \"error\"", c.Log.Level)
	}
	return nil
}

// validateListen checks every listener address and that no two listeners
// share one.
func (c *Config) validateListen() error {
	addrs := []struct{ key, addr string }{
		{"listen.smtp", c.Listen.SMTP},
		{"listen.lmtp", c.Listen.LMTP},
		{"listen.imap", c.Listen.IMAP},
		{"listen.imaps", c.Listen.IMAPS},
		{"listen.pop3", c.Listen.POP3},
		{"listen.pop3s", c.Listen.POP3S},
		{"listen.submission", c.Listen.Submission},
		{"listen.metrics", c.Listen.Metrics},
	}
	used := map[string]string{} // address -> key
	for _, a := range addrs {
		if a.addr == "" {
			continue
		}
		port, err := checkListen(a.addr)
		if err != nil {
			return c.keyError(a.key, "%v", err)
		}
		if other, ok := used[a.addr]; ok && port != 0 {
			return c.keyError(a.key, "%q is also the address of %s", a.addr, other)
		}
		used[a.addr] = a.key
	}
	return nil
}

// validateLimits checks the [limits] table.
func (c *Config) validateLimits() error {
	l := c.Limits
	for _, n := range []struct {
		key       string
		v, lo, hi int
	}{
		{"limits.max_connections", l.MaxConnections, 1, 1 << 20},
		{"limits.max_connections_per_ip", l.MaxConnectionsPerIP, 1, 1 << 20},
		{"limits.max_sessions_per_account_ip", l.MaxSessionsPerAccountIP, 1, 1 << 20},
		{"limits.max_command_line", l.MaxCommandLine, minCommandLine, maxCommandLineLimit},
		{"limits.max_auth_attempts", l.MaxAuthAttempts, 1, 100},
		{"limits.max_messages_per_session", l.MaxMessagesPerSession, 1, 1 << 30},
	} {
		if n.v < n.lo || n.v > n.hi {
			return c.keyError(n.key, "%d is not between %d and %d", n.v, n.lo, n.hi)
		}
	}
	if l.MaxConnectionsPerIP > l.MaxConnections {
		return c.keyError("limits.max_connections_per_ip", "%d is more than limits.max_connections (%d)", l.MaxConnectionsPerIP, l.MaxConnections)
	}
	if l.IdleTimeout != 0 && l.IdleTimeout < 10*time.Second {
		return c.keyError("limits.idle_timeout", "%v is shorter than 10s (0 for the protocols' own defaults)", l.IdleTimeout)
	}
	if l.CommandTimeout < time.Second || l.CommandTimeout > 24*time.Hour {
		return c.keyError("limits.command_timeout", "%v is not between 1s and 24h", l.CommandTimeout)
	}
	return nil
}

// checkListen checks a listener address and returns its port.
func checkListen(addr string) (uint16, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("%q is not host:port", addr)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q: port %q is not a number 0-65535", addr, port)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return 0, fmt.Errorf("%q: host %q is not empty (all addresses), an IP address or \"localhost\"", addr, host)
		}
	}
	return uint16(p), nil
}

// validateTLS checks that the certificate and key are named together and
// readable; the certs package checks their content when it loads them.
func (c *Config) validateTLS() error {
	cert, key := c.TLS.CertFile, c.TLS.KeyFile
	switch {
	case cert != "" && key == "":
		return c.keyError("tls.key_file", "missing: tls.cert_file needs its key_file")
	case cert == "" && key != "":
		return c.keyError("tls.cert_file", "missing: tls.key_file needs its cert_file")
	}
	if c.TLS.ACME {
		if err := c.validateACME(); err != nil {
			return err
		}
	}
	for _, f := range []struct{ key, path string }{{"tls.cert_file", cert}, {"tls.key_file", key}, {"tls.acme_ca_root", c.TLS.ACMECARoot}} {
		if f.path == "" {
			continue
		}
		// Opening proves readability; reading all of it is the certs
		// package's job (and would never end on a device like /dev/zero).
		fh, err := os.Open(f.path)
		if err == nil {
			var fi os.FileInfo
			if fi, err = fh.Stat(); err == nil && fi.IsDir() {
				err = errors.New("is a directory")
			}
			fh.Close()
		}
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return c.keyError(f.key, "cannot read %s: %v", f.path, err)
		}
	}
	return nil
}

// validateACME checks the acme_* keys when tls.acme is on.
func (c *Config) validateACME() error {
	t := c.TLS
	if t.CertFile != "" {
		return c.keyError("tls.acme", "true together with tls.cert_file: choose one")
	}
	if t.ACMEDirectory != "" {
		u, err := url.Parse(t.ACMEDirectory)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return c.keyError("tls.acme_directory", "%q is not an https:// URL", t.ACMEDirectory)
		}
	}
	for _, h := range t.ACMEHosts {
		if err := checkDomain(h); err != nil {
			return c.keyError("tls.acme_hosts", "%v", err)
		}
	}
	for _, p := range []struct {
		key  string
		port int
	}{{"tls.acme_http_port", t.ACMEHTTPPort}, {"tls.acme_tls_port", t.ACMETLSPort}} {
		if p.port < 0 || p.port > 65535 {
			return c.keyError(p.key, "%d is not a port 0-65535", p.port)
		}
	}
	if t.ACMEHTTPPort == 0 && t.ACMETLSPort == 0 {
		return c.keyError("tls.acme_tls_port", "0 together with acme_http_port = 0 leaves no way to answer the CA")
	}
	return nil
}

// checkMaxRecipients checks smtp.max_recipients.
func checkMaxRecipients(n int64) error {
	if n < 1 || n > maxRecipientsLimit {
		return fmt.Errorf("%d is not between 1 and %d", n, maxRecipientsLimit)
	}
	return nil
}

// checkMaxLineLength checks smtp.max_line_length.
func checkMaxLineLength(n int64) error {
	if n < minLineLength || n > maxLineLengthLimit {
		s := strconv.FormatInt(n, 10)
		if n == Unlimited {
			s = "unlimited"
		}
		return fmt.Errorf("%s is not between %d (RFC 5321) and %d bytes (a line is held in memory whole)", s, minLineLength, maxLineLengthLimit)
	}
	return nil
}

// checkDomain checks the syntax of a host or domain name (RFC 1123 §2.1
// labels: letters, digits, hyphens, not at either end; 63 octets a label,
// 253 in all). Internationalised names must be written in their ASCII
// (xn--) form.
func checkDomain(d string) error {
	if d == "" {
		return errors.New("empty domain name")
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return fmt.Errorf("%q is an IP address, not a domain name", d)
	}
	if len(d) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is not a domain name: labels are 1 to 63 characters", d)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a domain name: a label starts or ends with '-'", d)
		}
		for _, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			case r > 0x7f:
				return fmt.Errorf("%q is not an ASCII domain name: write it in its xn-- form", d)
			default:
				return fmt.Errorf("%q is not a domain name: %q is not a letter, digit or '-'", d, r)
			}
		}
	}
	return nil
}
