package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/auditd-ns/auditd-ns/internal/buildinfo"
)

// Exit codes, the same for every command (README, "Exit codes").
const (
	exitOK       = 0 // done
	exitFailure  = 1 // the command ran and failed: a bad config, a refused request
	exitUsage    = 2 // the command line is wrong: unknown command or flag, missing argument
	exitNoDaemon = 3 // ctl: no daemon answers on the control socket
)

// usageError is a wrong command line: the exit code is 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// runError is an error of a command that ran: the exit code is 1.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// noDaemonError says that nothing answers on the control socket.
type noDaemonError struct {
	sock string
	err  error
}

func (e *noDaemonError) Error() string {
	return fmt.Sprintf("no auditd-ns daemon answers on %s (is it running? is --socket right?): %v", e.sock, e.err)
}
func (e *noDaemonError) Unwrap() error { return e.err }

// exitCode is the exit code of a command's error. Errors cobra returns
// itself (an unknown flag, a flag's bad value) are usage errors.
func exitCode(err error) int {
	var nd *noDaemonError
	var ue *usageError
	var re *runError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &nd):
		return exitNoDaemon
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &re):
		return exitFailure
	}
	return exitUsage
}

// runE turns a command's function into a cobra RunE whose errors, other
// than usage errors, are run errors.
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		var ue *usageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		return &runError{err}
	}
}

// execute runs the command line args (without the program name) and
// returns its exit code. Errors go to stderr, results to stdout.
func execute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd, err := runCLI(args, stdin, stdout, stderr)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), strings.TrimRight(err.Error(), "\n"))
	if code == exitUsage {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// runCLI runs the command line args and returns the command it ran (the
// root when none was found) and its error.
func runCLI(args []string, stdin io.Reader, stdout, stderr io.Writer) (*cobra.Command, error) {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if cmd == nil {
		cmd = root
	}
	return cmd, err
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "auditd-ns",
		Short: "audit daemon for container hosts",
		Long: `auditd-ns is the audit daemon for container hosts: it writes the host's
complete audit log as auditd does, and copies each container's records to
that container's own audit daemon.

Exit codes: 0 done; 1 the command failed (a bad config, a refused request);
2 a wrong command line; 3 (ctl) no daemon answers on the control socket.`,
		Version:       buildinfo.Version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          groupArgs,
		RunE:          groupRun,
	}
	root.SetVersionTemplate("auditd-ns {{.Version}}\n")
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(newRunCmd(), newCheckCmd(), newCtlCmd(), newOCIHookCmd(), newGenManCmd())
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [COMMAND]...",
		Short: "the usage of a command",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, rest, err := cmd.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return groupArgs(c, rest)
			}
			return c.Help()
		},
	})
	// cobra's completion command: bash, zsh, fish, powershell; without
	// one of them, or with another, the command line is wrong.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args, c.RunE = groupArgs, groupRun
		}
	}
	return root
}

// groupArgs and groupRun serve commands that only hold others (the root,
// ctl, ctl rules): without one of them, or with an unknown one, the
// command line is wrong.
func groupArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usagef("no command given (commands: %s)", strings.Join(subNames(cmd), ", "))
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := suggest(args[0], subNames(cmd)); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else if s := ctlHint(cmd, args[0]); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else {
		msg += fmt.Sprintf(" (commands: %s)", strings.Join(subNames(cmd), ", "))
	}
	return usagef("%s", msg)
}

// ctlHint is "ctl status" for `auditd-ns status` (or a near miss of it):
// ctl's commands given at the top level.
func ctlHint(cmd *cobra.Command, name string) string {
	if cmd.HasParent() {
		return ""
	}
	for _, c := range cmd.Commands() {
		if c.Name() != "ctl" {
			continue
		}
		names := subNames(c)
		for _, n := range names {
			if n == name {
				return "ctl " + n
			}
		}
		if s := suggest(name, names); s != "" {
			return "ctl " + s
		}
	}
	return ""
}

func groupRun(cmd *cobra.Command, args []string) error { return groupArgs(cmd, args) }

func subNames(cmd *cobra.Command) []string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return names
}

// exactArgs is cobra.ExactArgs with a usage error that says what the
// arguments are.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			if len(args) > n {
				return usagef("unexpected argument %q: %s takes %s", args[n], cmd.Name(), what)
			}
			return usagef("%s takes %s", cmd.Name(), what)
		}
		return nil
	}
}

var unknownFlag = regexp.MustCompile(`^unknown (?:shorthand )?flag: '?-?-?([^' ]+)'?`)

// flagError makes a flag parsing error a usage error, with a did-you-mean
// for a near miss of a flag's name.
func flagError(cmd *cobra.Command, err error) error {
	if m := unknownFlag.FindStringSubmatch(err.Error()); m != nil {
		var names []string
		add := func(f *pflag.Flag) { names = append(names, f.Name) }
		cmd.Flags().VisitAll(add)
		cmd.InheritedFlags().VisitAll(add)
		if s := suggest(m[1], names); s != "" {
			return usagef("%v (did you mean --%s?)", err, s)
		}
	}
	return &usageError{err}
}

// suggest returns the name in names nearest to s when it is near enough to
// be a slip: at most 2 edits (1 for short names), or s is a prefix of it.
func suggest(s string, names []string) string {
	sort.Strings(names)
	best, bestD := "", 1<<30
	for _, n := range names {
		d := editDistance(strings.ToLower(s), strings.ToLower(n))
		if len(s) >= 3 && strings.HasPrefix(n, s) {
			d = 1
		}
		if d < bestD {
			best, bestD = n, d
		}
	}
	limit := 2
	if len(s) <= 4 {
		limit = 1
	}
	if bestD <= limit && bestD > 0 {
		return best
	}
	return ""
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment) of a and b, in bytes.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// isNoDaemon reports whether a dial error means nothing listens on the
// socket: no such file, or nobody accepting.
func isNoDaemon(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
