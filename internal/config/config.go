// Package config holds Loft's configuration: the Config type, the
// quickstart and production defaults, loading a TOML file with one-line
// error messages that name the file and the key, and size parsing
// ("200MB", "unlimited").
//
// docs/CONFIG.md documents every key; keep it in step with the keys table
// in decode.go (a test checks that each key is mentioned there).
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
)

// Config is Loft's configuration. Load and Default return it normalised
// (domains lower-cased, paths absolute) and validated.
type Config struct {
	// Hostname is the server's own name: SMTP greeting, self-signed
	// certificate name. Key "hostname"; default os.Hostname(), or
	// "localhost" in the quickstart.
	Hostname string
	// Domains are the mail domains delivered locally, lower-cased, no
	// duplicates, at least one. Key "domains"; default [Hostname].
	Domains []string
	// DataDir is where the store and the self-signed certificate live;
	// absolute (a relative data_dir is resolved against the working
	// directory at load time). Key "data_dir"; default "/var/lib/loft",
	// "./loft-data" in the quickstart.
	DataDir string
	// Listen holds the listener addresses ([listen]).
	Listen Listen
	// TLS names the certificate files ([tls]).
	TLS TLS
	// Auth holds authentication policy ([auth]).
	Auth Auth
	// Quota holds quota defaults ([quota]).
	Quota Quota
	// SMTP holds limits of SMTP and LMTP reception ([smtp]).
	SMTP SMTP
	// POP3 holds POP3 behaviour ([pop3]).
	POP3 POP3
	// Limits holds connection, line, attempt and time limits ([limits]).
	Limits Limits
	// Log holds logging settings ([log]).
	Log Log
	// Path is the file the configuration was loaded from, "" for Default.
	// Not a TOML key.
	Path string
}

// Listen holds one address per listener, as "host:port" with a numeric
// port; the host may be empty (all addresses), an IP address or
// "localhost". An empty string turns that listener off. Port 0 picks a free
// port (for tests).
type Listen struct {
	SMTP       string // "listen.smtp": SMTP (MX) reception, usually ":25"
	LMTP       string // "listen.lmtp": LMTP delivery from another MTA, e.g. "127.0.0.1:24"
	IMAP       string // "listen.imap": IMAP with STARTTLS, usually ":143"
	IMAPS      string // "listen.imaps": IMAP over implicit TLS, usually ":993"
	POP3       string // "listen.pop3": POP3 with STLS, usually ":110"
	POP3S      string // "listen.pop3s": POP3 over implicit TLS, usually ":995"
	Submission string // "listen.submission": message submission, usually ":587" (not served yet)
	// Metrics is the Prometheus endpoint (HTTP, GET /metrics), e.g.
	// "127.0.0.1:9465". Key "listen.metrics". It has no authentication:
	// keep it on loopback or a management network.
	Metrics string
}

// TLS names the server certificate. Both files, or ACME, or neither: with
// neither, Loft uses a self-signed certificate kept in DataDir/tls.
type TLS struct {
	CertFile string // "tls.cert_file": PEM certificate chain, leaf first; absolute
	KeyFile  string // "tls.key_file": PEM private key; absolute

	// ACME obtains and renews the certificate from an ACME CA (Let's
	// Encrypt by default). Key "tls.acme"; default false.
	ACME bool
	// ACMEEmail is given to the CA for expiry notices. Key
	// "tls.acme_email"; default none.
	ACMEEmail string
	// ACMEDirectory is the CA's directory URL. Key "tls.acme_directory";
	// default Let's Encrypt's production directory.
	ACMEDirectory string
	// ACMEHosts are the names the certificate covers. Key
	// "tls.acme_hosts"; default [Hostname].
	ACMEHosts []string
	// ACMEHTTPPort is where the HTTP-01 challenge is answered; 0 turns it
	// off. Key "tls.acme_http_port"; default 80.
	ACMEHTTPPort int
	// ACMETLSPort is where the TLS-ALPN-01 challenge is answered; 0 turns
	// it off. Key "tls.acme_tls_port"; default 443.
	ACMETLSPort int
	// ACMECARoot is a PEM file of roots to trust for the directory's
	// HTTPS, for a private CA; absolute. Key "tls.acme_ca_root"; default
	// none (the system's roots).
	ACMECARoot string
}

// Values of Auth.Plaintext.
const (
	// PlaintextNever refuses password authentication without TLS.
	PlaintextNever = "never"
	// PlaintextLoopback allows it only on connections from a loopback
	// address, where nothing can be sniffed on the wire.
	PlaintextLoopback = "loopback"
	// PlaintextAlways allows it on every connection.
	PlaintextAlways = "always"
)

// Auth holds authentication policy.
type Auth struct {
	// Plaintext says where password authentication is allowed on a
	// connection without TLS: PlaintextNever, PlaintextLoopback (default)
	// or PlaintextAlways. Key "auth.plaintext".
	Plaintext string
	// BlockAfter is the number of recent failed logins from one address
	// (an IPv4 address or an IPv6 /64) after which that address is
	// refused altogether for BlockFor. Key "auth.block_after"; default 30;
	// 0 turns blocking off (failures are still slowed down).
	BlockAfter int
	// BlockFor is how long a blocked address is refused. Key
	// "auth.block_for"; default "15m".
	BlockFor time.Duration
}

// Limits bound what one client can hold or make the server do. Each
// exceeded limit gets the protocol's own answer (SMTP 421, POP3 -ERR
// [SYS/TEMP], IMAP BYE [UNAVAILABLE]) and the server keeps serving others.
type Limits struct {
	// MaxConnections bounds the open connections of all listeners
	// together. Key "limits.max_connections"; default 10,000.
	MaxConnections int
	// MaxConnectionsPerIP bounds the open connections from one address
	// (IPv6: one /64). DESIGN.md §4: at least 100, for NATs and load
	// tools. Key "limits.max_connections_per_ip"; default 100.
	MaxConnectionsPerIP int
	// MaxSessionsPerAccountIP bounds the logged-in POP3 and IMAP sessions
	// of one account from one address. Key
	// "limits.max_sessions_per_account_ip"; default 20.
	MaxSessionsPerAccountIP int
	// MaxCommandLine bounds an IMAP command line, literals excluded, in
	// bytes (POP3 has the fixed RFC 2449 limit; SMTP smtp.max_line_length).
	// Key "limits.max_command_line"; default 64KiB.
	MaxCommandLine int
	// MaxAuthAttempts failed logins on one connection close it. Key
	// "limits.max_auth_attempts"; default 3.
	MaxAuthAttempts int
	// IdleTimeout closes a connection that sends no command for this
	// long; 0 means each protocol's RFC minimum (POP3 and SMTP 10
	// minutes, IMAP 30). Key "limits.idle_timeout"; default 0.
	IdleTimeout time.Duration
	// CommandTimeout bounds the time from the first byte of a command line
	// to its end, so that a client trickling a byte a minute is dropped
	// rather than held for the idle timeout. Key "limits.command_timeout";
	// default "2m".
	CommandTimeout time.Duration
	// MaxMessagesPerSession bounds the messages accepted on one SMTP
	// connection (not LMTP, whose client is a trusted MTA that may deliver
	// thousands). Key "limits.max_messages_per_session"; default 1,000.
	MaxMessagesPerSession int
}

// Quota holds quota defaults.
type Quota struct {
	// Default is the quota in bytes of an account created without an
	// explicit one, or Unlimited. Key "quota.default"; default "200MB"
	// (200,000,000 bytes).
	Default int64
}

// SMTP holds limits of SMTP and LMTP reception.
type SMTP struct {
	// MaxMessageSize is the largest message accepted, in bytes (advertised
	// with SIZE, RFC 1870), or Unlimited. Key "smtp.max_message_size";
	// default "64MB".
	MaxMessageSize int64
	// MaxRecipients is the most RCPT TO accepted per transaction. RFC 5321
	// §4.5.3.1.8 requires accepting at least 100. Key
	// "smtp.max_recipients"; default 100.
	MaxRecipients int
	// MaxLineLength is the longest line accepted, in bytes. RFC 5321
	// §4.5.3.1.6 sets 1000 including CRLF, but real mail (HTML from
	// marketing tools, long base64 without folding) carries lines of 5,000
	// and more, and refusing it loses mail. A line is buffered whole, so
	// the limit bounds memory per connection. Key "smtp.max_line_length";
	// default 64,000; at least 1000.
	MaxLineLength int
}

// POP3 holds POP3 behaviour.
type POP3 struct {
	// Exclusive makes a second concurrent session of one account fail with
	// -ERR [IN-USE] instead of both working on their own snapshots. Key
	// "pop3.exclusive"; default false.
	Exclusive bool
	// MarkSeen sets \Seen on a message retrieved with RETR, so IMAP
	// clients of the same account see it as read. Key "pop3.mark_seen";
	// default true.
	MarkSeen bool
}

// Log holds logging settings.
type Log struct {
	// Format is "text" (default) or "json". Key "log.format".
	Format string
	// Level is "debug", "info" (default), "warn" or "error". Key
	// "log.level".
	Level string
}

// SlogLevel returns Level as a slog.Level; an unknown level (which Validate
// rejects) is treated as info.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Quickstart data directory and listener addresses (DESIGN.md §4): high
// ports so that no privileges are needed, loopback only so that a first
// try exposes nothing.
const (
	quickstartDataDir = "loft-data"
	quickstartSMTP    = "127.0.0.1:2525"
	quickstartLMTP    = "127.0.0.1:2424"
	quickstartIMAP    = "127.0.0.1:1143"
	quickstartIMAPS   = "127.0.0.1:1993"
	quickstartPOP3    = "127.0.0.1:1110"
	quickstartPOP3S   = "127.0.0.1:1995"
	// quickstartMetrics is next to the ports of Prometheus's exporters
	// (9100 node, 9090 Prometheus itself), on one no common exporter
	// takes.
	quickstartMetrics = "127.0.0.1:9465"
)

// Production defaults, used for keys a config file leaves out.
const (
	defaultDataDir        = "/var/lib/loft"
	defaultQuota          = 200 * 1000 * 1000 // "200MB": room for years of ordinary mail
	defaultMaxMessageSize = 64 * 1000 * 1000  // "64MB": above the 25-50 MB common providers accept, after base64 growth
	defaultMaxRecipients  = 100               // RFC 5321 §4.5.3.1.8 minimum
	defaultMaxLineLength  = 64000             // see SMTP.MaxLineLength

	defaultACMEHTTPPort = 80  // where CAs connect for HTTP-01
	defaultACMETLSPort  = 443 // where CAs connect for TLS-ALPN-01

	defaultBlockAfter = 30               // a mistyped password retried all day stays below in 15 minutes
	defaultBlockFor   = 15 * time.Minute // long enough to stop a guesser, short enough for a person

	defaultMaxConnections          = 10000           // ~50 KB each: well under a gigabyte
	defaultMaxConnectionsPerIP     = 100             // DESIGN.md §4
	defaultMaxSessionsPerAccountIP = 20              // DESIGN.md §4
	defaultMaxCommandLine          = 64 << 10        // Dovecot's imap_max_line_length: room for long UID sets
	defaultMaxAuthAttempts         = 3               // a person retries once or twice
	defaultCommandTimeout          = 2 * time.Minute // a 64 KiB line at 1 KB/s, with room
	defaultMaxMessagesPerSession   = 1000
)

// Default returns the quickstart configuration that `loft serve` uses
// without a config file (DESIGN.md §4): data in ./loft-data (made absolute),
// hostname and only domain "localhost", listeners on 127.0.0.1 (SMTP 2525,
// LMTP 2424, IMAP 1143, IMAPS 1993, POP3 1110, POP3S 1995, metrics 9465,
// no submission yet), a self-signed certificate, plaintext passwords on loopback only,
// quota 200MB.
func Default() *Config {
	c := defaults()
	c.Hostname = "localhost"
	c.Domains = []string{"localhost"}
	c.DataDir = absOrSame(quickstartDataDir)
	c.Listen = Listen{
		SMTP:    quickstartSMTP,
		LMTP:    quickstartLMTP,
		IMAP:    quickstartIMAP,
		IMAPS:   quickstartIMAPS,
		POP3:    quickstartPOP3,
		POP3S:   quickstartPOP3S,
		Metrics: quickstartMetrics,
	}
	return c
}

// defaults returns the production defaults that Load starts from: every
// listener off, hostname from the system, domains filled in by Load.
func defaults() *Config {
	return &Config{
		Hostname: systemHostname(),
		DataDir:  defaultDataDir,
		Auth:     Auth{Plaintext: PlaintextLoopback, BlockAfter: defaultBlockAfter, BlockFor: defaultBlockFor},
		TLS:      TLS{ACMEHTTPPort: defaultACMEHTTPPort, ACMETLSPort: defaultACMETLSPort},
		Quota:    Quota{Default: defaultQuota},
		SMTP: SMTP{
			MaxMessageSize: defaultMaxMessageSize,
			MaxRecipients:  defaultMaxRecipients,
			MaxLineLength:  defaultMaxLineLength,
		},
		POP3: POP3{MarkSeen: true},
		Limits: Limits{
			MaxConnections:          defaultMaxConnections,
			MaxConnectionsPerIP:     defaultMaxConnectionsPerIP,
			MaxSessionsPerAccountIP: defaultMaxSessionsPerAccountIP,
			MaxCommandLine:          defaultMaxCommandLine,
			MaxAuthAttempts:         defaultMaxAuthAttempts,
			CommandTimeout:          defaultCommandTimeout,
			MaxMessagesPerSession:   defaultMaxMessagesPerSession,
		},
		Log: Log{Format: "text", Level: "info"},
	}
}

// systemHostname is os.Hostname, lower-cased, or "localhost" when the
// system's name is unset or not a valid domain name (so that a default the
// user never wrote cannot fail validation).
func systemHostname() string {
	h, err := os.Hostname()
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if err != nil || checkDomain(h) != nil {
		return "localhost"
	}
	return h
}

// absOrSame makes a path absolute against the working directory, leaving it
// as is if the working directory cannot be found.
func absOrSame(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// Load reads the TOML file at path on top of the production defaults (not
// the quickstart: a listener whose key is absent is off) and validates the
// result. Relative paths (data_dir, tls.cert_file, tls.key_file) are
// resolved against the process's working directory and returned absolute.
// Every error is one line naming the file, and the key where there is one:
//
//	config /etc/loft.toml: key "listen.imap": "143" is not host:port
//	config /etc/loft.toml: unknown key "quota.defualt"
//	config /etc/loft.toml: line 3: expected value but found '\n' instead
//	config /etc/loft.toml: open: permission denied
func Load(path string) (*Config, error) {
	c := defaults()
	c.Path = path
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("config %s: %s: %v", path, pe.Op, pe.Err)
		}
		return nil, fmt.Errorf("config %s: %v", path, err)
	}
	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("config %s: line %d: %s", path, pe.Position.Line, oneLine(pe.Message))
		}
		return nil, fmt.Errorf("config %s: %s", path, oneLine(err.Error()))
	}
	if err := c.apply(raw, md.Keys()); err != nil {
		return nil, err
	}
	if !md.IsDefined("domains") {
		c.Domains = []string{strings.ToLower(c.Hostname)}
	}
	for _, p := range []*string{&c.DataDir, &c.TLS.CertFile, &c.TLS.KeyFile, &c.TLS.ACMECARoot} {
		if *p == "" {
			continue
		}
		a, err := filepath.Abs(*p)
		if err != nil {
			return nil, fmt.Errorf("config %s: resolve %q: %v", path, *p, err)
		}
		*p = a
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// oneLine escapes the line breaks and other control characters that a
// parser's message may quote from the file, so that errors stay one line.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// keyError is a one-line error about one key of c's file.
func (c *Config) keyError(key, format string, args ...any) error {
	return fmt.Errorf("%s: key %q: %s", c.source(), key, fmt.Sprintf(format, args...))
}

// source names where c came from, as the start of an error message.
func (c *Config) source() string {
	if c.Path == "" {
		return "config"
	}
	return "config " + c.Path
}
