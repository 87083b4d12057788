// Command auditd-ns is the audit daemon for container hosts: `run` is the
// daemon, `check` validates its config and rules files.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/internal/daemon"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

const usage = `usage: auditd-ns COMMAND [flags]

commands:
  run   [--config FILE] run the daemon (as root): register with the kernel,
                        load rules, write the host log
  check [--config FILE] validate the config and its rules files; exit 1 on
                        any error
                        FILE is an auditd.conf (default /etc/audit/auditd.conf,
                        with auditd-ns.yaml beside it) or a YAML config
  ctl [--socket PATH] COMMAND
                        talk to the running daemon: register, unregister,
                        rules push, containers, status (ctl --help)
  oci-hook [--socket PATH] [--config FILE] createRuntime|poststop
                        OCI runtime hook: register a container under its
                        OCI id with the targets the admin's hook config
                        (/etc/auditd-ns/oci-hook.yaml) allows its
                        annotations to choose (OCI state on stdin)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "check":
		err = checkCmd(os.Args[2:], os.Stdout)
	case "ctl":
		err = ctlCmd(os.Args[2:], os.Stdout)
	case "oci-hook":
		err = ociHookCmd(os.Args[2:], os.Stdin, os.Stderr)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "auditd-ns: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "auditd-ns %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// defaultConfig is auditd's own config file: auditd-ns reads it as it is,
// with the auditd-ns.yaml beside it.
const defaultConfig = "/etc/audit/auditd.conf"

// legacyConfig was the default before: a YAML config.
const legacyConfig = "/etc/auditd-ns/auditd-ns.yaml"

func configFlag(name string, args []string) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", defaultConfig, "daemon config: an auditd.conf (with auditd-ns.yaml beside it) or a YAML config")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return *path, nil
}

func runCmd(args []string) error {
	path, err := configFlag("run", args)
	if err != nil {
		return err
	}
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

func checkCmd(args []string, out io.Writer) error {
	path, err := configFlag("check", args)
	if err != nil {
		return err
	}
	cfg, _, err := loadConfig(path)
	if err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				fmt.Fprintln(out, e)
			}
			return fmt.Errorf("%d errors", len(joined.Unwrap()))
		}
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(os.Stderr, "warning: %s\n", w)
	}
	if cfg.Side != "" {
		path += " and " + cfg.Side
	}
	fmt.Fprintf(out, "%s: ok\n", path)
	return nil
}

// loadConfig loads the daemon's config, saying what to do when the file is
// missing.
func loadConfig(path string) (*config.Config, *rules.KernelFile, error) {
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
