// loft serve: start the server, print what it listens on, reload the
// certificate on SIGHUP, and on SIGINT or SIGTERM shut down gracefully
// (deliveries under way finish, bounded).
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"loft/internal/config"
	"loft/internal/server"
	"loft/internal/store"
)

// quickstartAccount is created, with a random password, on the first start
// of a quickstart.
const quickstartAccount = "postmaster@localhost"

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	load := configFlag(fs)
	logFormat := fs.String("log-format", "", "log format: text or json (default: the config's, text)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for benchmarks)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg, quickstart, err := load()
	if err != nil {
		return err
	}
	if *logFormat != "" {
		if *logFormat != "text" && *logFormat != "json" {
			return fmt.Errorf("%w: --log-format must be text or json, not %q", errUsage, *logFormat)
		}
		cfg.Log.Format = *logFormat
	}
	log := newLogger(cfg, stderr)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	srv, err := server.Start(cfg, log)
	if err != nil {
		return err
	}
	if quickstart {
		if err := quickstartWelcome(srv.Store, cfg, stdout); err != nil {
			srv.Shutdown(context.Background())
			return err
		}
	}
	fmt.Fprintf(stdout, "Loft is running; data in %s\n", cfg.DataDir)
	for _, l := range srv.Listeners() {
		fmt.Fprintf(stdout, "  %-7s %s\n", l.Name, l.Addr)
	}
	log.Info("started", "data_dir", cfg.DataDir, "config", cfg.Path)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var serveErr error
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				// Reload what can change under a running server: the
				// certificate files (renewed by certbot, say).
				if err := srv.ReloadTLS(); err != nil {
					log.Error("SIGHUP: certificate not reloaded; still serving the previous one", "err", err)
				}
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			break wait
		case serveErr = <-srv.Errors():
			log.Error("listener failed; shutting down", "err", serveErr)
			break wait
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), server.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	log.Info("stopped")
	return serveErr
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// quickstartWelcome creates postmaster@localhost on the first start of a
// quickstart and prints its password, once, with the client settings.
func quickstartWelcome(st *store.Store, cfg *config.Config, stdout io.Writer) error {
	accounts, err := st.Accounts(context.Background())
	if err != nil || len(accounts) > 0 {
		return err
	}
	pw := rand.Text()
	cred, err := credentials(pw)
	if err != nil {
		return err
	}
	if _, err := st.CreateAccountWithCredentials(context.Background(), quickstartAccount, cred, nil); err != nil {
		if errors.Is(err, store.ErrAccountExists) {
			return nil
		}
		return err
	}
	fmt.Fprintf(stdout, "Created %s with password: %s\n", quickstartAccount, pw)
	fmt.Fprintf(stdout, "  (shown only this once; change it with: loft account passwd %s)\n", quickstartAccount)
	fmt.Fprintf(stdout, "Client settings: user %s, server 127.0.0.1, SMTP %s, LMTP %s\n",
		quickstartAccount, cfg.Listen.SMTP, cfg.Listen.LMTP)
	return nil
}
