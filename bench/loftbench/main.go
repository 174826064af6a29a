// Command loftbench is Loft's load generator. It drives a mail server on this machine
// (loopback only) with a standard message set and reports throughput and latency, so that
// Loft and Dovecot can be measured side by side with the same tool.
//
// Usage:
//
//	loftbench lmtp --addr 127.0.0.1:PORT --mbox FILE --conns N --accounts M --domain D
//	               [--user-format 'bench%d'] [--count K] [--duration 60s] [--lhlo host] [--json]
//
// Exit status: 0 when every transaction succeeded, 1 when some were rejected or failed,
// 2 when the run could not start (bad flags, unreadable mbox, no connection).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"
)

// commands maps each subcommand to its entry point, which returns the exit status.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"lmtp": lmtpCommand,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	// The first ^C ends the run after the transactions in flight; a second one kills.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || commands[args[0]] == nil {
		names := make([]string, 0, len(commands))
		for name := range commands {
			names = append(names, name)
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "usage: loftbench {%s} [flags]   (loftbench CMD -h for flags)\n", strings.Join(names, "|"))
		return 2
	}
	return commands[args[0]](ctx, args[1:], stdout, stderr)
}

// lmtpCommand is `loftbench lmtp`: delivery over LMTP.
func lmtpCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loftbench lmtp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o lmtpOptions
	fs.StringVar(&o.Addr, "addr", "", "LMTP server `host:port`; loopback only")
	mbox := fs.String("mbox", "", "mbox `file` with the messages to send")
	fs.IntVar(&o.Conns, "conns", 1, "parallel connections")
	fs.IntVar(&o.Accounts, "accounts", 100, "recipients cycle through accounts 1..`M`")
	fs.StringVar(&o.Domain, "domain", "", "recipient `domain`")
	fs.StringVar(&o.UserFormat, "user-format", "bench%d", "local part of recipient N, a fmt `format` with one %d")
	fs.IntVar(&o.Count, "count", 0, "messages to send in total (default: every message of the mbox once)")
	fs.DurationVar(&o.Duration, "duration", 60*time.Second, "stop after this long even if --count is not reached")
	fs.DurationVar(&o.Timeout, "timeout", 60*time.Second, "limit for one transaction, and for connecting")
	fs.StringVar(&o.LHLO, "lhlo", "localhost", "`name` to give in LHLO")
	fs.StringVar(&o.From, "from", "loftbench@localhost", "MAIL FROM `address`")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loftbench lmtp: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.Addr == "" || *mbox == "" || o.Domain == "" {
		fmt.Fprintln(stderr, "loftbench lmtp: --addr, --mbox and --domain are required")
		return 2
	}
	// Refuse a non-loopback address before doing any work.
	if _, err := loopbackAddr(o.Addr); err != nil {
		fmt.Fprintln(stderr, "loftbench lmtp:", err)
		return 2
	}
	msgs, err := loadMbox(*mbox)
	if err != nil {
		fmt.Fprintln(stderr, "loftbench lmtp:", err)
		return 2
	}
	o.Messages = msgs
	if o.Count == 0 {
		o.Count = len(msgs)
	}

	res, err := runLMTP(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "loftbench lmtp:", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		printResult(stdout, res)
	}
	if res.Errors > 0 {
		fmt.Fprintf(stderr, "loftbench lmtp: %d transactions failed; the first:\n", res.Errors)
		for _, e := range res.FirstErrors {
			fmt.Fprintln(stderr, "  "+e)
		}
		return 1
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "loftbench lmtp: interrupted")
		return 1
	}
	return 0
}

// printResult writes the human-readable report.
func printResult(w io.Writer, r *result) {
	fmt.Fprintf(w, "lmtp %s: %d conns, %d accounts\n", r.Addr, r.Conns, r.Accounts)
	fmt.Fprintf(w, "messages  %d (errors %d)\n", r.Messages, r.Errors)
	fmt.Fprintf(w, "bytes     %d (%.1f MB)\n", r.Bytes, float64(r.Bytes)/1e6)
	fmt.Fprintf(w, "seconds   %.3f\n", r.Seconds)
	fmt.Fprintf(w, "msgs/s    %.1f\n", r.MsgsPerSec)
	fmt.Fprintf(w, "MB/s      %.2f\n", r.MBPerSec)
	fmt.Fprintf(w, "latency   p50 %.2f ms, p99 %.2f ms\n", r.P50ms, r.P99ms)
}
