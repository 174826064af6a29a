// Turning a decoded TOML document into a Config: the table of known keys,
// type checks with messages that name the key, and unknown-key detection.

package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// tables are the known TOML tables; every other known key is in keys.
var tables = map[string]bool{
	"listen": true, "tls": true, "auth": true, "quota": true,
	"smtp": true, "pop3": true, "log": true, "limits": true,
}

// keys maps every known leaf key (as toml.Key.String spells it) to the code
// that stores its value in a Config. Only types are checked here; values
// are checked by Validate.
var keys = map[string]func(c *Config, v any) error{
	"hostname": str(func(c *Config) *string { return &c.Hostname }),
	"domains": func(c *Config, v any) error {
		list, err := asStrings(v)
		if err != nil {
			return err
		}
		c.Domains = c.Domains[:0]
		seen := map[string]bool{}
		for _, d := range list {
			// Domain names are case-insensitive; a trailing dot (the DNS
			// root) is not part of the mail domain.
			d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
			if !seen[d] {
				seen[d] = true
				c.Domains = append(c.Domains, d)
			}
		}
		return nil
	},
	"data_dir":           str(func(c *Config) *string { return &c.DataDir }),
	"listen.smtp":        str(func(c *Config) *string { return &c.Listen.SMTP }),
	"listen.lmtp":        str(func(c *Config) *string { return &c.Listen.LMTP }),
	"listen.imap":        str(func(c *Config) *string { return &c.Listen.IMAP }),
	"listen.imaps":       str(func(c *Config) *string { return &c.Listen.IMAPS }),
	"listen.pop3":        str(func(c *Config) *string { return &c.Listen.POP3 }),
	"listen.pop3s":       str(func(c *Config) *string { return &c.Listen.POP3S }),
	"listen.submission":  str(func(c *Config) *string { return &c.Listen.Submission }),
	"listen.metrics":     str(func(c *Config) *string { return &c.Listen.Metrics }),
	"tls.cert_file":      str(func(c *Config) *string { return &c.TLS.CertFile }),
	"tls.key_file":       str(func(c *Config) *string { return &c.TLS.KeyFile }),
	"tls.acme":           boolean(func(c *Config) *bool { return &c.TLS.ACME }),
	"tls.acme_email":     str(func(c *Config) *string { return &c.TLS.ACMEEmail }),
	"tls.acme_directory": str(func(c *Config) *string { return &c.TLS.ACMEDirectory }),
	"tls.acme_hosts": func(c *Config, v any) error {
		list, err := asStrings(v)
		if err != nil {
			return err
		}
		c.TLS.ACMEHosts = c.TLS.ACMEHosts[:0]
		for _, h := range list {
			c.TLS.ACMEHosts = append(c.TLS.ACMEHosts, strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), "."))
		}
		return nil
	},
	"tls.acme_http_port":    integer(func(c *Config) *int { return &c.TLS.ACMEHTTPPort }),
	"tls.acme_tls_port":     integer(func(c *Config) *int { return &c.TLS.ACMETLSPort }),
	"tls.acme_ca_root":      str(func(c *Config) *string { return &c.TLS.ACMECARoot }),
	"auth.plaintext":        str(func(c *Config) *string { return &c.Auth.Plaintext }),
	"auth.block_after":      integer(func(c *Config) *int { return &c.Auth.BlockAfter }),
	"auth.block_for":        duration(func(c *Config) *time.Duration { return &c.Auth.BlockFor }),
	"quota.default":         size(func(c *Config) *int64 { return &c.Quota.Default }),
	"smtp.max_message_size": size(func(c *Config) *int64 { return &c.SMTP.MaxMessageSize }),
	"smtp.max_recipients": func(c *Config, v any) error {
		n, err := asInt(v)
		if err != nil {
			return err
		}
		if err := checkMaxRecipients(n); err != nil {
			return err
		}
		c.SMTP.MaxRecipients = int(n)
		return nil
	},
	"smtp.max_line_length": func(c *Config, v any) error {
		n, err := asSize(v)
		if err != nil {
			return err
		}
		if err := checkMaxLineLength(n); err != nil {
			return err
		}
		c.SMTP.MaxLineLength = int(n)
		return nil
	},
	"pop3.exclusive":                     boolean(func(c *Config) *bool { return &c.POP3.Exclusive }),
	"pop3.mark_seen":                     boolean(func(c *Config) *bool { return &c.POP3.MarkSeen }),
	"limits.max_connections":             integer(func(c *Config) *int { return &c.Limits.MaxConnections }),
	"limits.max_connections_per_ip":      integer(func(c *Config) *int { return &c.Limits.MaxConnectionsPerIP }),
	"limits.max_sessions_per_account_ip": integer(func(c *Config) *int { return &c.Limits.MaxSessionsPerAccountIP }),
	"limits.max_command_line": func(c *Config, v any) error {
		n, err := asSize(v)
		if err != nil {
			return err
		}
		if n < minCommandLine || n > maxCommandLineLimit {
			return fmt.Errorf("%s is not between %d and %d bytes (a line is held in memory whole)", formatLimit(n), minCommandLine, maxCommandLineLimit)
		}
		c.Limits.MaxCommandLine = int(n)
		return nil
	},
	"limits.max_auth_attempts":        integer(func(c *Config) *int { return &c.Limits.MaxAuthAttempts }),
	"limits.idle_timeout":             duration(func(c *Config) *time.Duration { return &c.Limits.IdleTimeout }),
	"limits.command_timeout":          duration(func(c *Config) *time.Duration { return &c.Limits.CommandTimeout }),
	"limits.max_messages_per_session": integer(func(c *Config) *int { return &c.Limits.MaxMessagesPerSession }),
	"log.format":                      str(func(c *Config) *string { return &c.Log.Format }),
	"log.level":                       str(func(c *Config) *string { return &c.Log.Level }),
}

// apply stores the values of raw in c, visiting keys in file order so that
// the first problem in the file is the one reported.
//
// Unknown keys are found by checking every key against the tables above
// rather than with toml.MetaData.Undecoded after decoding into a struct:
// the struct decoder matches field names case-insensitively, so it would
// silently accept "Data_Dir" or "[Listen]"; Loft's keys are exact.
func (c *Config) apply(raw map[string]any, order []toml.Key) error {
	for _, k := range order {
		name := k.String()
		v := lookup(raw, k)
		if tables[name] {
			if _, ok := v.(map[string]any); !ok {
				return c.keyError(name, "want a table ([%s]), got %s", name, describe(v))
			}
			continue
		}
		set, ok := keys[name]
		if !ok {
			return fmt.Errorf("%s: unknown key %q", c.source(), name)
		}
		if err := set(c, v); err != nil {
			return c.keyError(name, "%v", err)
		}
	}
	return nil
}

// lookup returns the value at key k of a decoded document.
func lookup(m map[string]any, k toml.Key) any {
	var v any = m
	for _, part := range k {
		t, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = t[part]
	}
	return v
}

// str returns a setter for a string key.
func str(field func(*Config) *string) func(*Config, any) error {
	return func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string, got %s", describe(v))
		}
		*field(c) = s
		return nil
	}
}

// boolean returns a setter for a boolean key.
func boolean(field func(*Config) *bool) func(*Config, any) error {
	return func(c *Config, v any) error {
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("want true or false, got %s", describe(v))
		}
		*field(c) = b
		return nil
	}
}

// formatLimit spells a size limit for an error message.
func formatLimit(n int64) string {
	if n == Unlimited {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

// integer returns a setter for an integer key; the range is Validate's.
func integer(field func(*Config) *int) func(*Config, any) error {
	return func(c *Config, v any) error {
		n, err := asInt(v)
		if err != nil {
			return err
		}
		if n < -1<<31 || n > 1<<31-1 {
			return fmt.Errorf("%d is out of range", n)
		}
		*field(c) = int(n)
		return nil
	}
}

// duration returns a setter for a duration key: a string such as "90s",
// "10m" or "1h30m" (Go's time.ParseDuration).
func duration(field func(*Config) *time.Duration) func(*Config, any) error {
	return func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a duration like \"10m\" or \"30s\", got %s", describe(v))
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a duration like \"10m\", \"30s\" or \"1h30m\"", s)
		}
		if d < 0 {
			return fmt.Errorf("%q is negative", s)
		}
		*field(c) = d
		return nil
	}
}

// size returns a setter for a size key.
func size(field func(*Config) *int64) func(*Config, any) error {
	return func(c *Config, v any) error {
		n, err := asSize(v)
		if err != nil {
			return err
		}
		*field(c) = n
		return nil
	}
}

// asInt accepts a TOML integer.
func asInt(v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("want an integer, got %s", describe(v))
	}
	return n, nil
}

// asSize accepts a size string for ParseSize ("200MB", "unlimited") or a
// non-negative TOML integer, taken as bytes.
func asSize(v any) (int64, error) {
	switch v := v.(type) {
	case string:
		return ParseSize(v)
	case int64:
		if v < 0 {
			return 0, fmt.Errorf("size %d is negative (for no limit write \"unlimited\")", v)
		}
		return v, nil
	}
	return 0, fmt.Errorf("want a size like \"200MB\" or a number of bytes, got %s", describe(v))
}

// asStrings accepts an array of strings.
func asStrings(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want an array of strings like [\"example.org\"], got %s", describe(v))
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("want an array of strings, got an element that is %s", describe(e))
		}
		out = append(out, s)
	}
	return out, nil
}

// describe names a decoded TOML value's type, with the value when short,
// for "want X, got Y" messages.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("a date or time (%v)", v)
}
