package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditd-ns/auditd-ns/pkg/control"
)

// runBin runs the real binary with args and returns its exit code, stdout
// and stderr.
func runBin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(hookBinary(t), args...)
	cmd.Env = append(os.Environ(), "AUDITD_NS_SOCKET=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// commandPaths lists every command of the CLI, as argument lists.
func commandPaths() [][]string {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			if sub.Name() == "help" {
				continue
			}
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	root := newRoot(nil, nil, nil)
	walk(root, nil)
	return paths
}

// Every command, the hidden ones too, prints its usage on stdout for -h
// and --help and exits 0.
func TestCLIHelpEveryCommand(t *testing.T) {
	paths := commandPaths()
	if len(paths) < 12 {
		t.Fatalf("only %d commands found: %v", len(paths), paths)
	}
	for _, p := range paths {
		for _, h := range []string{"-h", "--help"} {
			code, out, errs := runBin(t, append(append([]string{}, p...), h)...)
			if code != 0 || !strings.Contains(out, "Usage:") || errs != "" {
				t.Errorf("auditd-ns %s %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(p, " "), h, code, out, errs)
			}
		}
	}
}

func TestCLIVersion(t *testing.T) {
	code, out, errs := runBin(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "auditd-ns ") || errs != "" {
		t.Errorf("--version: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

// A wrong command line exits 2 with the error on stderr and nothing on
// stdout, naming what is wrong (with a did-you-mean for a near miss).
func TestCLIUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"chek"}, `did you mean "check"?`},
		{[]string{"status"}, `did you mean "ctl status"?`},
		{[]string{"run", "--confg", "x"}, "unknown flag: --confg (did you mean --config?)"},
		{[]string{"run", "extra"}, `unexpected argument "extra"`},
		{[]string{"check", "--config"}, "flag needs an argument: --config"},
		{[]string{"ctl"}, "no command given"},
		{[]string{"ctl", "stauts"}, `did you mean "status"?`},
		{[]string{"ctl", "--timeout", "soon", "status"}, `invalid argument "soon" for "--timeout"`},
		{[]string{"ctl", "register"}, "register takes a container FILE or flags"},
		{[]string{"ctl", "register", "a.yaml", "--name", "x"}, "not both"},
		{[]string{"ctl", "register", "--parnet", "x"}, "did you mean --parent?"},
		{[]string{"ctl", "unregister"}, "one container NAME"},
		{[]string{"ctl", "unregister", "--spol", "x"}, "did you mean --spool?"},
		{[]string{"ctl", "rules"}, "no command given"},
		{[]string{"ctl", "rules", "push", "x"}, "a container NAME and a rules FILE"},
		{[]string{"ctl", "containers", "extra"}, `unexpected argument "extra"`},
		{[]string{"ctl", "status", "--jsn"}, "did you mean --json?"},
		{[]string{"oci-hook", "createRuntime", "extra"}, `unexpected argument "extra"`},
		{[]string{"completion", "tcsh"}, `unknown command "tcsh"`},
	} {
		code, out, errs := runBin(t, tc.args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("auditd-ns %q: exit %d, want 2\nstdout: %s\nstderr: %s\nwant: %s", tc.args, code, out, errs, tc.want)
		}
	}
}

// ctl exits 3 when no daemon answers: no socket, or a socket nobody
// accepts on; 1 when the daemon refuses.
func TestCLINoDaemon(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	for _, sock := range []string{filepath.Join(dir, "none.sock"), stale} {
		code, out, errs := runBin(t, "ctl", "--socket", sock, "status")
		if code != exitNoDaemon || out != "" || !strings.Contains(errs, "no auditd-ns daemon answers on "+sock) {
			t.Errorf("ctl status on %s: exit %d, want 3\nstdout: %s\nstderr: %s", sock, code, out, errs)
		}
	}
	_, sock := testServer(t)
	code, _, errs := runBin(t, "ctl", "--socket", sock, "unregister", "nosuch")
	if code != exitFailure || !strings.Contains(errs, `no container "nosuch"`) {
		t.Errorf("unregistering an unknown container: exit %d, want 1\nstderr: %s", code, errs)
	}
}

// Errors about a container described by flags name the flags, not lines
// of a YAML file the user never wrote.
func TestCLIRegisterErrorsNameFlags(t *testing.T) {
	_, sock := testServer(t)
	rules := writeFile(t, "rules.yaml", "- keep: {type: EXECVE}\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "web", "--id", "5", "--parent", "nope", "--file", "/srv/web.log"}, `--parent nope: parent "nope" is not a registered container`},
		{[]string{"--name", "web", "--id", "5"}, "--file or --remote: "},
		{[]string{"--name", "web", "--id", "5", "--file", "/srv/web.log", "--memory", "lots"}, "--memory lots: "},
		{[]string{"--name", "web", "--id", "five", "--file", "/srv/web.log"}, "--id five: "},
		{[]string{"--name", "we b", "--id", "5", "--file", "/srv/web.log"}, `--name "we b": `},
		{[]string{"--name", "web", "--id", "5", "--remote", "nowhere", "--rules", rules}, "--remote nowhere: "},
		{[]string{"--name", "web", "--id", "5", "--file", "/srv/web.log", "--rules", filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml: no such file or directory"},
	} {
		code, _, errs := runBin(t, append([]string{"ctl", "--socket", sock, "register"}, tc.args...)...)
		if code != exitFailure || !strings.Contains(errs, tc.want) || strings.Contains(errs, cmdLineFile) {
			t.Errorf("register %q: exit %d\nstderr: %s\nwant: %s", tc.args, code, errs, tc.want)
		}
	}
}

// A near miss of a container's name gets a did-you-mean.
func TestCLIContainerNameHint(t *testing.T) {
	_, sock := testServer(t)
	if code, _, errs := runBin(t, "ctl", "--socket", sock, "register", "--name", "webserver", "--id", "5", "--file", "/srv/web.log"); code != 0 {
		t.Fatalf("register: exit %d: %s", code, errs)
	}
	code, _, errs := runBin(t, "ctl", "--socket", sock, "unregister", "webservre")
	if code != exitFailure || !strings.Contains(errs, `did you mean "webserver"?`) {
		t.Errorf("unregister webservre: exit %d\nstderr: %s", code, errs)
	}
	rules := writeFile(t, "rules.yaml", "- keep: {type: EXECVE}\n")
	code, _, errs = runBin(t, "ctl", "--socket", sock, "rules", "push", "websrever", rules)
	if code != exitFailure || !strings.Contains(errs, `did you mean "webserver"?`) {
		t.Errorf("rules push websrever: exit %d\nstderr: %s", code, errs)
	}
}

// ctl status shows each target's last delivery error in its table.
func TestCLIStatusLastError(t *testing.T) {
	b, sock := testServer(t)
	if code, _, errs := runBin(t, "ctl", "--socket", sock, "register", "--name", "web", "--id", "5", "--remote", "127.0.0.1:60"); code != 0 {
		t.Fatalf("register: exit %d: %s", code, errs)
	}
	at := time.Date(2026, 12, 4, 16, 5, 7, 0, time.UTC)
	b.SetFigures("web", control.ContainerInfo{LastError: "dial tcp 127.0.0.1:60: connect:\nconnection refused", LastErrorTime: at})
	code, out, errs := runBin(t, "ctl", "--socket", sock, "status")
	if code != 0 || !strings.Contains(out, "LAST ERROR") || !strings.Contains(out, "16:05:07Z dial tcp 127.0.0.1:60: connect: connection refused\n") {
		t.Errorf("status: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

// The man pages (one per command) and the shell completions are made
// from the same command definitions.
func TestCLIManAndCompletion(t *testing.T) {
	dir := t.TempDir()
	if code, out, errs := runBin(t, "gen-man", dir); code != 0 {
		t.Fatalf("gen-man: exit %d\n%s%s", code, out, errs)
	}
	for _, p := range commandPaths() {
		name := strings.Join(append([]string{"auditd-ns"}, p...), "-") + ".8"
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			if strings.Join(p, " ") == "gen-man" {
				continue // hidden
			}
			t.Errorf("no man page for %q: %v", p, err)
			continue
		}
		if !bytes.HasPrefix(b, []byte(".nh\n.TH \"AUDITD-NS\" \"8\"")) {
			t.Errorf("%s does not start as a man page: %.80q", name, b)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "auditd-ns-ctl-register.8")); err != nil || !bytes.Contains(b, []byte("scoped-socket")) {
		t.Errorf("the register man page does not name its flags: %v", err)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errs := runBin(t, "completion", sh)
		if code != 0 || !strings.Contains(out, "auditd-ns") || errs != "" {
			t.Errorf("completion %s: exit %d, %d bytes\nstderr: %s", sh, code, len(out), errs)
		}
	}
	// The completion the shell asks for at run time knows ctl's commands.
	code, out, _ := runBin(t, "__complete", "ctl", "st")
	if code != 0 || !strings.Contains(out, "status") {
		t.Errorf("__complete ctl st: exit %d\n%s", code, out)
	}
}
