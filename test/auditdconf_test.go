package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// stockConf is the auditd.conf that the Debian auditd package installs.
const stockConf = "/etc/audit/auditd.conf"

// copyStock copies the stock auditd.conf into dir, with only log_file
// changed to dir/log/audit.log, and returns the copy's path.
func copyStock(t testing.TB, dir string) string {
	t.Helper()
	b, err := os.ReadFile(stockConf)
	if os.IsNotExist(err) {
		t.Skipf("needs %s (Debian package auditd)", stockConf)
	}
	must(t, err)
	re := regexp.MustCompile(`(?m)^log_file = .*$`)
	if !re.Match(b) {
		t.Fatalf("%s sets no log_file", stockConf)
	}
	b = re.ReplaceAll(b, []byte("log_file = "+filepath.Join(dir, "log", "audit.log")))
	conf := filepath.Join(dir, "auditd.conf")
	must(t, os.WriteFile(conf, b, 0o640))
	return conf
}

// runCheck runs `auditd-ns check` with args and returns its exit code,
// stdout and stderr.
func runCheck(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"check"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// The stock auditd.conf passes check as it is, with one warning naming
// the options auditd-ns does not implement.
func TestCheckStockAuditdConf(t *testing.T) {
	if _, err := os.Stat(stockConf); err != nil {
		t.Skipf("needs %s (Debian package auditd): %v", stockConf, err)
	}
	code, out, errs := runCheck(t, "--config", stockConf)
	if code != 0 || !strings.Contains(out, stockConf+": ok") {
		t.Fatalf("check --config %s: exit %d\nstdout: %s\nstderr: %s", stockConf, code, out, errs)
	}
	if n := strings.Count(errs, "warning:"); n != 1 {
		t.Errorf("check printed %d warnings, want one:\n%s", n, errs)
	}
	for _, k := range []string{"tcp_listen_queue", "krb5_principal", "transport",
		"verify_email", "action_mail_acct", "use_libwrap", "distribute_network", "end_of_event_timeout"} {
		b, _ := os.ReadFile(stockConf)
		if regexp.MustCompile(`(?m)^`+k+` = `).Match(b) && !strings.Contains(errs, k) {
			t.Errorf("the warning does not name %s:\n%s", k, errs)
		}
	}
	if strings.Contains(errs, "unknown") {
		t.Errorf("check called a stock option unknown:\n%s", errs)
	}
	// The same file turned into YAML (key = value as key: value) passes
	// too, with the same one warning.
	b, err := os.ReadFile(stockConf)
	must(t, err)
	yml := filepath.Join(t.TempDir(), "auditd-ns.yaml")
	must(t, os.WriteFile(yml, regexp.MustCompile(`(?m)^(\w+) = `).ReplaceAll(b, []byte("$1: ")), 0o600))
	code, out, errs = runCheck(t, "--config", yml)
	if code != 0 || strings.Count(errs, "warning:") != 1 || !strings.Contains(errs, "distribute_network") {
		t.Errorf("check --config %s (the stock file in YAML): exit %d\nstdout: %s\nstderr: %s", yml, code, out, errs)
	}
	// With no --config, check reads the same file.
	if _, err := os.Stat(filepath.Join(filepath.Dir(stockConf), "auditd-ns.yaml")); os.IsNotExist(err) {
		code, out, errs = runCheck(t)
		if code != 0 || !strings.Contains(out, stockConf+": ok") {
			t.Errorf("check with no --config: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
		}
	}
}

// Errors in an auditd.conf, its auditd-ns.yaml and the files they name are
// reported by the real binary as FILE:LINE(:COL), exit 1.
func TestCheckAuditdConfErrors(t *testing.T) {
	for _, tc := range []struct {
		name, conf, side string
		want             string
	}{
		{"unknown option", "flush = data\nlog_fiel = /x\n", "", "auditd.conf:2:1: unknown option \"log_fiel\"; did you mean log_file?"},
		{"no spaces", "flush=data\n", "", "auditd.conf:1:1: write \"flush=data\" with spaces around ="},
		{"trailing comment", "flush = data # fast\n", "", "auditd.conf:1:14: flush takes one value; \"#\": auditd.conf has no comments after a value"},
		{"bad value", "\nfreq = often\n", "", "auditd.conf:2:8: freq: \"often\" is not a positive number"},
		{"auditd-ns setting in auditd.conf", "containers_dir = /x\n", "", "auditd.conf:1:1: containers_dir is an auditd-ns setting"},
		{"YAML syntax", "flush = data\n", "state_dir: /x\nlisten: [\n", "auditd-ns.yaml:2: yaml: "},
		{"auditd option in auditd-ns.yaml", "flush = data\n", "\nlog_file: /x\n", "auditd-ns.yaml:2:1: log_file is an auditd.conf option: set it in "},
		{"missing rules file", "flush = data\n", "log_level: debug\naudit_rules: none.rules\n", "auditd-ns.yaml:2:1: audit_rules: "},
	} {
		dir := t.TempDir()
		conf := filepath.Join(dir, "auditd.conf")
		must(t, os.WriteFile(conf, []byte(tc.conf), 0o600))
		if tc.side != "" {
			must(t, os.WriteFile(filepath.Join(dir, "auditd-ns.yaml"), []byte(tc.side), 0o600))
		}
		code, out, errs := runCheck(t, "--config", conf)
		if code != 1 || !strings.Contains(out+errs, filepath.Join(dir, tc.want)) {
			t.Errorf("%s: exit %d\nstdout: %s\nstderr: %s\nwant exit 1 and %s", tc.name, code, out, errs, filepath.Join(dir, tc.want))
		}
	}
	missing := filepath.Join(t.TempDir(), "auditd.conf")
	code, _, errs := runCheck(t, "--config", missing)
	if code != 1 || !strings.Contains(errs, missing+": no such config file") {
		t.Errorf("missing config: exit %d, stderr %s", code, errs)
	}
}

// TestIntegrationStockAuditdConf runs the daemon with a copy of the stock
// auditd.conf (only log_file changed) and an auditd-ns.yaml beside it: it
// registers, logs the records of a rule, reloads on SIGHUP, and stops clean.
func TestIntegrationStockAuditdConf(t *testing.T) {
	needTools(t)
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	conf := copyStock(t, dir)
	key := testKey("stockconf")
	prog := privateTrue(t, dir)
	must(t, os.WriteFile(filepath.Join(dir, "audit.rules"), []byte("-D\n"+execRule(prog, key)), 0o600))
	side := fmt.Sprintf("audit_rules: audit.rules\nrules_on_exit: delete\nbacklog_limit: 8192\nlog_level: debug\n"+
		"control_socket: %s/control.sock\nlost_check_interval: 200ms\n", dir)
	must(t, os.WriteFile(filepath.Join(dir, "auditd-ns.yaml"), []byte(side), 0o600))

	code, out, errs := runCheck(t, "--config", conf)
	if code != 0 || strings.Count(errs, "warning:") != 1 {
		t.Fatalf("check: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}

	stderr, err := os.Create(filepath.Join(dir, "daemon.err"))
	must(t, err)
	watchRaces(t, stderr.Name())
	cmd := exec.Command(binary, "run", "--config", conf)
	cmd.Stderr = stderr
	must(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	text := func() string { b, _ := os.ReadFile(stderr.Name()); return string(b) }
	waitFor(t, 10*time.Second, func() bool {
		st, err := ctl.Status()
		return err == nil && int(st.PID) == cmd.Process.Pid && strings.Contains(text(), "containers started")
	}, "the daemon to register")
	if !strings.Contains(text(), "ignoring auditd options that auditd-ns does not implement") {
		t.Errorf("the daemon logged no warning of the ignored options:\n%s", text())
	}
	busyHost(t)
	const n = 5
	for range n {
		must(t, exec.Command(prog).Run())
	}
	log := filepath.Join(dir, "log", "audit.log")
	waitFor(t, 10*time.Second, func() bool { return ausearchCount(t, log, "-k", key) >= n }, "the records in the log")
	// SIGHUP re-reads the auditd.conf: a bad line is named and changes
	// nothing, a good file is taken.
	good, err := os.ReadFile(conf)
	must(t, err)
	bad := append(append([]byte{}, good...), "bogus_option = 1\n"...)
	must(t, os.WriteFile(conf, bad, 0o640))
	// (hclog quotes the error, so the option's own quotes are escaped.)
	badLine := fmt.Sprintf("%s:%d:1: unknown option ", conf, bytes.Count(bad, []byte("\n")))
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(text(), badLine) }, "the daemon to name "+badLine)
	must(t, os.WriteFile(conf, good, 0o640))
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(text(), "reloaded the config (SIGHUP)") }, "the daemon to reload")
	if n := strings.Count(text(), "ignoring auditd options that auditd-ns does not implement"); n != 2 {
		t.Errorf("the warning of the ignored options was logged %d times, want at start and at the reload:\n%s", n, text())
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("auditd-ns exited with %v; stderr:\n%s", err, text())
	}
	// (-x: a reload's rule changes are CONFIG_CHANGE events of the
	// daemon with the key too.)
	if got := ausearchCount(t, log, "-k", key, "-x", prog); got != n {
		t.Errorf("ausearch -k %s -x %s found %d events, want %d", key, prog, got, n)
	}
	// The stock file says log_format = ENRICHED: the records carry the
	// names (the field after the 0x1d separator).
	b, err := os.ReadFile(log)
	must(t, err)
	if !bytes.Contains(b, []byte("\x1dARCH=")) {
		t.Errorf("no ENRICHED record in %s", log)
	}
	checkLines(t, log)
	st, err := ctl.Status()
	must(t, err)
	if st.PID != 0 {
		t.Errorf("audit pid %d after a clean stop, want 0", st.PID)
	}
	if rules, _ := ctl.Rules(); len(rules) != 0 {
		t.Errorf("%d rules left after stop with rules_on_exit: delete", len(rules))
	}
}
