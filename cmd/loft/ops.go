// The operations commands: check (and repair), backup and restore. Check
// and backup work beside a running `loft serve`; restore needs the data
// directory to itself. docs/OPERATIONS.md explains them for operators.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"loft/internal/config"
	"loft/internal/store"
)

// lockDataDir takes the lock that `loft serve` holds on its data directory
// (server.lockDataDir: an flock on DIR/serve.lock). Held, it says that no
// server runs on the directory, and keeps one from starting until release.
// When a server holds it, lockDataDir returns nil and no error.
func lockDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, "serve.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

func cmdCheckStore(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	load := configFlag(fs)
	repair := fs.Bool("repair", false, "fix what can be fixed without losing mail, and say what was done")
	lostFound := fs.String("lost-found", "", "account whose lost+found mailbox receives bodies that belong to no message (default postmaster@ the first domain)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg, _, err := load()
	if err != nil {
		return err
	}
	release, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	opts := store.CheckOptions{Stopped: release != nil, LostFound: *lostFound}
	if release != nil {
		defer release()
	}
	if opts.LostFound == "" {
		opts.LostFound = "postmaster@" + cfg.Domains[0]
	}
	st, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()

	var rep *store.Report
	if *repair {
		rep, err = st.Repair(ctx, opts)
	} else {
		rep, err = st.CheckWith(ctx, opts)
	}
	if rep != nil {
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, "problem:", p)
		}
		for _, r := range rep.Repairs {
			fmt.Fprintln(stdout, "repaired:", r)
		}
	}
	if err != nil {
		return err
	}
	found := len(rep.Problems)
	if *repair {
		// What is left, as a plain check sees it now.
		if rep, err = st.CheckWith(ctx, opts); err != nil {
			return err
		}
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, "left:", p)
		}
	}
	if rep.Unreferenced > 0 {
		fmt.Fprintf(stdout, "note: %d body files without a message, younger than an hour: deliveries in flight beside the running server (not orphans yet)\n",
			rep.Unreferenced)
	}
	switch {
	case *repair && len(rep.Problems) > 0:
		return fmt.Errorf("check: %d problems in %s, %d left after repair", found, cfg.DataDir, len(rep.Problems))
	case len(rep.Problems) > 0:
		return fmt.Errorf("check: %d problems in %s (loft check --repair fixes what it can)", len(rep.Problems), cfg.DataDir)
	case found > 0:
		fmt.Fprintf(stdout, "ok: store is consistent after repairing %d problems\n", found)
	default:
		fmt.Fprintln(stdout, "ok: store is consistent")
	}
	return nil
}

func cmdBackup(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
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
	res, err := st.Backup(context.Background(), store.BackupOptions{Dir: pos[0]})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s\n", res.Dir)
	fmt.Fprintf(stdout, "  snapshot as of %s: %d accounts, %d mailboxes, %d messages, %d bodies\n",
		res.Taken.UTC().Format(time.RFC3339), res.Accounts, res.Mailboxes, res.Messages, res.Bodies)
	fmt.Fprintf(stdout, "  bodies: %d shared with the previous backup, %d linked, %d copied (%s)\n",
		res.Reused, res.Linked, res.Copied, config.FormatSize(res.CopiedBytes))
	return nil
}

func cmdRestore(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	load := configFlag(fs)
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	cfg, _, err := load()
	if err != nil {
		return err
	}
	release, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	if release == nil {
		return fmt.Errorf("restore: a loft serve is running on %s; stop it and restore into an empty data directory", cfg.DataDir)
	}
	defer release()
	res, err := store.Restore(context.Background(), store.RestoreOptions{From: pos[0], Dir: cfg.DataDir})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s from %s: %d bodies (%d linked, %d copied)\n",
		cfg.DataDir, res.From, res.Bodies, res.Linked, res.Copied)
	for _, p := range res.Check.Problems {
		fmt.Fprintln(stdout, "problem:", p)
	}
	if len(res.Check.Problems) > 0 {
		return fmt.Errorf("restore: the restored store has %d problems (see loft check)", len(res.Check.Problems))
	}
	fmt.Fprintln(stdout, "ok: restored store is consistent")
	return nil
}
