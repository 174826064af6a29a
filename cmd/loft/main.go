// Command loft is the Loft mail server and its administration CLI.
//
//	loft serve                        run the server (quickstart without a config)
//	loft account add ADDRESS [--quota SIZE]
//	loft account passwd ADDRESS
//	loft account del ADDRESS
//	loft account list
//	loft quota set ADDRESS SIZE
//	loft check [--repair] [--lost-found ADDRESS]
//	loft backup DIR
//	loft restore BACKUP
//	loft reindex [ADDRESS]
//
// Every command takes --config FILE (or $LOFT_CONFIG); flags may come before
// or after the positional arguments. The account and quota commands work
// while `loft serve` runs on the same data and take effect at once.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `usage: loft COMMAND [ARGS] [--config FILE]

commands:
  serve                              run the server (without a config: quickstart on 127.0.0.1)
  account add ADDRESS [--quota SIZE] add an account; password from stdin or prompted
  account passwd ADDRESS             change an account's password
  account del ADDRESS                delete an account and all its mail
  account list                       list accounts: address, messages, usage, quota
  quota set ADDRESS SIZE             set a quota: 200MB, 1.5GiB, unlimited, default
  check [--repair] [--lost-found ADDRESS]
                                     verify the store; --repair fixes what it can without losing mail
  backup DIR                         add a consistent backup of the running store to DIR (incremental)
  restore BACKUP                     rebuild an empty data directory from a backup (DIR or one in it)
  reindex [ADDRESS]                  rebuild the search index of one account, or of all
`

// errUsage marks an error whose message is a usage hint.
var errUsage = errors.New("usage")

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprint(os.Stderr, usage)
		}
		fmt.Fprintf(os.Stderr, "loft: %s\n", oneLine(err))
		os.Exit(exitCode(err))
	}
}

// exitCode: 2 for a usage error, 1 for anything else.
func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// oneLine keeps an error to one line, as scripts and init systems read it.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, stdout, stderr)
	case "account":
		if len(rest) == 0 {
			return fmt.Errorf("%w: account needs add, passwd, del or list", errUsage)
		}
		switch rest[0] {
		case "add":
			return cmdAccountAdd(rest[1:], stdin, stdout, stderr)
		case "passwd":
			return cmdAccountPasswd(rest[1:], stdin, stdout, stderr)
		case "del", "delete":
			return cmdAccountDel(rest[1:], stdout)
		case "list", "ls":
			return cmdAccountList(rest[1:], stdout)
		}
		return fmt.Errorf("%w: unknown account command %q", errUsage, rest[0])
	case "quota":
		if len(rest) == 0 || rest[0] != "set" {
			return fmt.Errorf("%w: quota needs set", errUsage)
		}
		return cmdQuotaSet(rest[1:], stdout)
	case "check":
		return cmdCheckStore(rest, stdout)
	case "backup":
		return cmdBackup(rest, stdout)
	case "restore":
		return cmdRestore(rest, stdout)
	case "reindex":
		return cmdReindex(rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// parseFlags parses fs's flags wherever they stand among the positional
// arguments ("add --quota 1GB bob@x" and "add bob@x --quota 1GB" alike) and
// checks the number of positional arguments.
func parseFlags(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != positional {
		return nil, fmt.Errorf("%w: %s takes %d argument(s), got %d", errUsage, fs.Name(), positional, len(pos))
	}
	return pos, nil
}
