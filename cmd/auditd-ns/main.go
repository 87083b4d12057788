// Command auditd-ns is the audit daemon for container hosts: `run` is the
// daemon, `check` validates its config and rules files, `ctl` talks to a
// running daemon, `oci-hook` registers containers from an OCI runtime.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/internal/daemon"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// defaultConfig is auditd's own config file: auditd-ns reads it as it is,
// with the auditd-ns.yaml beside it.
const defaultConfig = "/etc/audit/auditd.conf"

// legacyConfig was the default before: a YAML config.
const legacyConfig = "/etc/auditd-ns/auditd-ns.yaml"

const configHelp = "daemon config: an auditd.conf (with auditd-ns.yaml beside it) or a YAML config"

func newRunCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run [--config FILE]",
		Short: "run the daemon (as root): register with the kernel, load rules, write the host log",
		Long: `Run the daemon (as root): register with the kernel as its audit daemon,
load the audit rules, write the host log, and copy containers' records to
their targets. SIGHUP reloads the config and rules; SIGTERM stops it.
Under systemd (Type=notify) it tells systemd it is ready once it is the
registered audit daemon with its rules loaded.`,
		Args: exactArgs(0, "no arguments"),
		RunE: runE(func(cmd *cobra.Command, _ []string) error { return runDaemon(path) }),
	}
	cmd.Flags().StringVar(&path, "config", defaultConfig, configHelp)
	return cmd
}

func newCheckCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check [--config FILE]",
		Short: "validate the config and its rules files",
		Long: `Validate the daemon's config and the rules and container files it names.
Each problem is written to stderr as FILE:LINE:COL: message; the exit code
is 1 when there is any.`,
		Args: exactArgs(0, "no arguments"),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return checkConfig(path, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	cmd.Flags().StringVar(&path, "config", defaultConfig, configHelp)
	return cmd
}

func runDaemon(path string) error {
	cfg, kf, err := loadConfig(path)
	if err != nil {
		return err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "auditd-ns", Level: hclog.LevelFromString(cfg.LogLevel), Output: os.Stderr})
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	if path := os.Getenv("AUDITD_NS_CPUPROFILE"); path != "" {
		// For developers: a Go CPU profile of the whole run.
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return daemon.Run(ctx, cfg, kf, log)
}

func checkConfig(path string, out, errOut io.Writer) error {
	cfg, _, err := loadConfig(path)
	if err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				fmt.Fprintln(errOut, e)
			}
			if n := len(joined.Unwrap()); n != 1 {
				return fmt.Errorf("%d errors", n)
			}
			return errors.New("1 error")
		}
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(errOut, "warning: %s\n", w)
	}
	if cfg.Side != "" {
		path += " and " + cfg.Side
	}
	fmt.Fprintf(out, "%s: ok\n", path)
	return nil
}

// loadConfig loads the daemon's config, saying what to do when the file is
// missing.
func loadConfig(path string) (*config.Config, *auditrule.File, error) {
	cfg, kf, err := daemon.Load(path)
	if errors.Is(err, config.ErrNotFound) {
		hint := "give one with --config FILE: an auditd.conf or a YAML config"
		if _, serr := os.Stat(legacyConfig); serr == nil && path == defaultConfig {
			hint = "the default is auditd's own config now; give --config " + legacyConfig + " to read yours"
		}
		return nil, nil, fmt.Errorf("%s: no such config file (%s)", path, hint)
	}
	return cfg, kf, err
}
