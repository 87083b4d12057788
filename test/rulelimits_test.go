package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// manyRules is a rules list of n rules, each listing two record types and
// a key (three patterns as the limits count them).
func manyRules(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- drop: {type: [DAEMON_ROTATE, DAEMON_RESUME], key: k%d}\n", i)
	}
	return b.String()
}

// TestIntegrationRuleLimits: through the real control socket, a rules push
// or a registration whose rules are over a container's limit, or that
// would put a chain over its limit, is refused with the file and line of
// the rule that goes past; the container keeps its rules. The daemon runs
// in listener mode, so the kernel's audit state is not touched.
func TestIntegrationRuleLimits(t *testing.T) {
	dir := controlDaemon(t, "max_rules: 20\nmax_rule_patterns: 60\nmax_chain_patterns: 80\n")

	container := limitsContainer(t, dir)
	rulesFile := func(n int) string { return limitsRules(t, dir, n) }
	if out, err := ctl(t, dir, "register", container("web", "", 10)); err != nil {
		t.Fatalf("registering within the limits: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		// Rule 21 is on line 21 of the pushed file.
		{"push over max_rules", []string{"rules", "push", "web", rulesFile(21)}, "rules-21.yaml:21:3: rule 21 brings the rules to 21, more than the 20 allowed (max_rules"},
		// 10 rules of 3 patterns in web, 20 in the child (60 patterns, its
		// own limit): its rule 17, on line 5+17 of its file, brings the
		// chain to 81 patterns.
		{"register over the chain", []string{"register", container("child", "web", 20)}, "child.yaml:22:5: rule 17 brings the patterns to 81, more than the 80 allowed (max_chain_rules, max_chain_patterns"},
		{"register over max_rules", []string{"register", container("big", "", 25)}, "big.yaml:25:5: rule 21 brings the rules to 21, more than the 20 allowed"},
	} {
		out, err := ctl(t, dir, tc.args...)
		if err == nil || !strings.Contains(out, tc.want) || !strings.Contains(out, "invalid") {
			t.Errorf("%s: %v\n%s\nwant an invalid error with %q", tc.name, err, out, tc.want)
		}
	}
	out, err := ctl(t, dir, "containers")
	if err != nil || !strings.Contains(out, "web") || strings.Contains(out, "child") || strings.Contains(out, "big") {
		t.Errorf("containers after the refusals: %v\n%s", err, out)
	}
	if out, err := ctl(t, dir, "rules", "push", "web", rulesFile(20)); err != nil || !strings.Contains(out, "pushed 20 rules") {
		t.Errorf("a push at the limit: %v\n%s", err, out)
	}
}

// controlDaemon runs auditd-ns in listener mode (no kernel) with the extra
// config, and returns its directory once its control socket answers.
func controlDaemon(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	runControlDaemon(t, dir, extra)
	return dir
}

// runControlDaemon runs auditd-ns in listener mode (no kernel) in dir, its
// control socket dir/control.sock, with the extra config, until the test
// ends. It returns the daemon and its config file once the socket answers.
func runControlDaemon(t *testing.T, dir, extra string) (*exec.Cmd, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port(t))
	cfg := filepath.Join(dir, "auditd-ns.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("local_events: no\nlisten: {address: %q}\nlog_file: %s/log/audit.log\nstate_dir: %s/state\ncontrol_socket: %s/control.sock\n%s", addr, dir, dir, dir, extra)), 0o600))
	d := exec.Command(binary, "run", "--config", cfg)
	errFile := filepath.Join(dir, "stderr")
	derr, err := os.Create(errFile)
	must(t, err)
	d.Stderr = derr
	watchRaces(t, errFile)
	must(t, d.Start())
	t.Cleanup(func() {
		d.Process.Kill()
		d.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(errFile)
			t.Logf("daemon stderr:\n%s", b)
		}
	})
	waitAccepting(t, addr)
	waitFor(t, 10*time.Second, func() bool { _, err := ctl(t, dir, "status"); return err == nil }, "the control socket")
	return d, cfg
}

// limitsContainer returns a function writing a container file with n
// rules of manyRules.
func limitsContainer(t *testing.T, dir string) func(name, parent string, n int) string {
	return func(name, parent string, n int) string {
		f := filepath.Join(dir, name+".yaml")
		body := fmt.Sprintf("name: %s\ncgroup: /sys/fs/cgroup/auditd-ns-limits-%s\ndeliver: {file: %s/%s/audit.log}\n", name, name, dir, name)
		if parent != "" {
			body += "parent: " + parent + "\n"
		}
		body += "rules:\n"
		for _, l := range strings.Split(strings.TrimSpace(manyRules(n)), "\n") {
			body += "  " + l + "\n"
		}
		must(t, os.WriteFile(f, []byte(body), 0o600))
		return f
	}
}

func limitsRules(t *testing.T, dir string, n int) string {
	f := filepath.Join(dir, fmt.Sprintf("rules-%d.yaml", n))
	must(t, os.WriteFile(f, []byte(manyRules(n)), 0o600))
	return f
}

// keyRules writes a rules file of n rules of one pattern each.
func keyRules(t *testing.T, dir string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- drop: {key: k%d}\n", i)
	}
	f := filepath.Join(dir, fmt.Sprintf("keys-%d.yaml", n))
	must(t, os.WriteFile(f, []byte(b.String()), 0o600))
	return f
}

// TestIntegrationRuleLimitsDefault: with no limits configured, a push of
// 49 rules is refused by the default max_rules of 48, one of 99 patterns
// by the default max_rule_patterns of 96; 48 rules are accepted.
func TestIntegrationRuleLimitsDefault(t *testing.T) {
	dir := controlDaemon(t, "")
	if out, err := ctl(t, dir, "register", limitsContainer(t, dir)("web", "", 1)); err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}
	out, err := ctl(t, dir, "rules", "push", "web", keyRules(t, dir, 49))
	if err == nil || !strings.Contains(out, "keys-49.yaml:49:3: rule 49 brings the rules to 49, more than the 48 allowed (max_rules") {
		t.Errorf("pushing 49 rules: %v\n%s", err, out)
	}
	// 33 rules of 3 patterns: 99, over the default 96.
	out, err = ctl(t, dir, "rules", "push", "web", limitsRules(t, dir, 33))
	if err == nil || !strings.Contains(out, "rules-33.yaml:33:3: rule 33 brings the patterns to 99, more than the 96 allowed") {
		t.Errorf("pushing 99 patterns: %v\n%s", err, out)
	}
	if out, err := ctl(t, dir, "rules", "push", "web", keyRules(t, dir, 48)); err != nil || !strings.Contains(out, "pushed 48 rules") {
		t.Errorf("pushing 48 rules: %v\n%s", err, out)
	}
}
