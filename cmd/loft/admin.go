// The account, quota and check commands. They open the store directly,
// beside a running `loft serve` if there is one: SQLite serialises the
// writes, and the server reads accounts and quotas at each use, so changes
// take effect at once.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"loft/internal/auth"
	"loft/internal/config"
	"loft/internal/store"
)

// configFlag adds --config to fs and returns a loader for the chosen
// configuration: the file named by --config or $LOFT_CONFIG, or else the
// quickstart defaults (so the CLI finds ./loft-data of a quickstart).
func configFlag(fs *flag.FlagSet) func() (*config.Config, bool, error) {
	path := fs.String("config", "", "configuration file (default $LOFT_CONFIG; none: quickstart)")
	return func() (*config.Config, bool, error) {
		p := *path
		if p == "" {
			p = os.Getenv("LOFT_CONFIG")
		}
		if p == "" {
			return config.Default(), true, nil
		}
		c, err := config.Load(p)
		return c, false, err
	}
}

func openStore(cfg *config.Config) (*store.Store, error) {
	return store.Open(context.Background(), store.Options{Dir: cfg.DataDir, DefaultQuota: cfg.Quota.Default})
}

// openConfigured loads the configuration a command's --config names and
// opens its store, which the caller closes.
func openConfigured(load func() (*config.Config, bool, error)) (*config.Config, *store.Store, error) {
	cfg, _, err := load()
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, st, nil
}

func cmdAccountAdd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("account add", flag.ContinueOnError)
	load := configFlag(fs)
	quota := fs.String("quota", "", "storage limit: 200MB, 1.5GiB, unlimited (default: the configured default)")
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	cfg, _, err := load()
	if err != nil {
		return err
	}
	addr := strings.ToLower(pos[0])
	if err := checkLocalAddress(cfg, addr); err != nil {
		return err
	}
	var q *int64
	if *quota != "" && *quota != "default" {
		n, err := config.ParseSize(*quota)
		if err != nil {
			return fmt.Errorf("account add %s: --quota: %w", addr, err)
		}
		q = &n
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		return fmt.Errorf("account add %s: %w", addr, err)
	}
	cred, err := credentials(pw)
	if err != nil {
		return err
	}
	st, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := st.CreateAccountWithCredentials(context.Background(), addr, cred, q)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %s (quota %s)\n", a.Address, config.FormatSize(a.Quota))
	return nil
}

// credentials computes what the store keeps of a password: its argon2id
// hash and its SCRAM-SHA-256 keys.
func credentials(password string) (store.Credentials, error) {
	hash, err := auth.HashPassword(password)
	if err != nil {
		return store.Credentials{}, err
	}
	scram, err := auth.HashSCRAM(password)
	if err != nil {
		return store.Credentials{}, err
	}
	return store.Credentials{PasswordHash: hash, SCRAMSHA256: scram}, nil
}

// checkLocalAddress refuses an account whose domain the server does not
// receive mail for: it could log in but would never get mail.
func checkLocalAddress(cfg *config.Config, addr string) error {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 || strings.ContainsAny(addr, " \t\r\n<>") {
		return fmt.Errorf("%q is not an address like user@%s", addr, cfg.Domains[0])
	}
	if !slices.Contains(cfg.Domains, addr[i+1:]) {
		return fmt.Errorf("%s: domain %q is not one of the configured domains (%s)",
			addr, addr[i+1:], strings.Join(cfg.Domains, ", "))
	}
	return nil
}

func cmdAccountPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("account passwd", flag.ContinueOnError)
	load := configFlag(fs)
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	_, st, err := openConfigured(load)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Account(context.Background(), pos[0]); err != nil {
		return err
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		return fmt.Errorf("account passwd %s: %w", pos[0], err)
	}
	cred, err := credentials(pw)
	if err != nil {
		return err
	}
	if err := st.SetCredentials(context.Background(), pos[0], cred); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "password of %s changed\n", strings.ToLower(pos[0]))
	return nil
}

func cmdAccountDel(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("account del", flag.ContinueOnError)
	load := configFlag(fs)
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	_, st, err := openConfigured(load)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.DeleteAccount(context.Background(), pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted %s and all its mail\n", strings.ToLower(pos[0]))
	return nil
}

func cmdAccountList(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("account list", flag.ContinueOnError)
	load := configFlag(fs)
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	_, st, err := openConfigured(load)
	if err != nil {
		return err
	}
	defer st.Close()
	accounts, err := st.Accounts(context.Background())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tMESSAGES\tUSAGE\tQUOTA\tUSED")
	for _, a := range accounts {
		quota := config.FormatSize(a.Quota)
		if a.QuotaIsDefault {
			quota += " (default)"
		}
		used := "-"
		if a.Quota > 0 {
			used = fmt.Sprintf("%.0f%%", 100*float64(a.Usage)/float64(a.Quota))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", a.Address, a.Messages, a.Usage, quota, used)
	}
	return tw.Flush()
}

func cmdQuotaSet(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("quota set", flag.ContinueOnError)
	load := configFlag(fs)
	pos, err := parseFlags(fs, args, 2)
	if err != nil {
		return err
	}
	cfg, _, err := load()
	if err != nil {
		return err
	}
	var q *int64
	if pos[1] != "default" {
		n, err := config.ParseSize(pos[1])
		if err != nil {
			return fmt.Errorf("quota set %s: %w", pos[0], err)
		}
		q = &n
	}
	st, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.SetQuota(context.Background(), pos[0], q); err != nil {
		return err
	}
	a, err := st.Account(context.Background(), pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "quota of %s: %s (using %d bytes)\n", a.Address, config.FormatSize(a.Quota), a.Usage)
	return nil
}

// readPassword reads the new password: one line from stdin when it is not a
// terminal (scripts), otherwise prompted twice without echo.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return checkPassword(string(a))
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("read password from standard input: no line")
	}
	return checkPassword(strings.TrimRight(line, "\r\n"))
}

func checkPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("empty password")
	}
	return pw, nil
}
