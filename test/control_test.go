package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

func ctl(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"ctl", "--socket", filepath.Join(dir, "control.sock")}, args...)...)
	out, err := cmd.CombinedOutput()
	noRaces(t, "ctl "+strings.Join(args, " "), out)
	return string(out), err
}

// holdIn runs one process that joins cgroup dir by itself and execs prog
// (a private copy of cat) reading a pipe, and holds it there until done
// says its event has come where the test looks (or 30 s have passed: the
// caller then counts exactly and fails), then closes the pipe and waits
// for it to end. Alive when the tracker reads its write to cgroup.procs and
// its exec, it is always placed (a process that moves itself and exits at
// once may be gone first: its events then go to no container, by design).
func holdIn(t *testing.T, dir, prog string, done func() bool, what string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && exec %s", dir, prog))
	in, err := cmd.StdinPipe()
	must(t, err)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	ok := false
	for end := time.Now().Add(30 * time.Second); !ok && time.Now().Before(end); {
		if ok = done(); !ok {
			time.Sleep(50 * time.Millisecond)
		}
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("running in %s: %v\n%s", dir, err, out.String())
	}
	if !ok {
		t.Fatalf("timed out after 30s waiting for %s", what)
	}
}

// keyCount counts the SYSCALL records of rule key key in file.
func keyCount(file, key string) int {
	b, _ := os.ReadFile(file)
	return strings.Count(string(b), ` key="`+key+`"`)
}

// webFiltered is the copies web's rules dropped, from ctl containers.
func webFiltered(t *testing.T, dir string) uint64 {
	out, err := ctl(t, dir, "containers", "--json")
	var list []struct {
		Name     string `json:"name"`
		Filtered uint64 `json:"filtered"`
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil {
		return 0
	}
	for _, c := range list {
		if c.Name == "web" {
			return c.Filtered
		}
	}
	return 0
}

// TestIntegrationControl registers a container at run time through `ctl`,
// routes to it, pushes new rules, lists it (table and JSON), scrapes the
// metrics endpoint while records flow, and unregisters it with a drain.
func TestIntegrationControl(t *testing.T) {
	needTools(t)
	ctlk := testkernel.Take(t)
	dir := t.TempDir()
	id := fmt.Sprint(os.Getpid())
	cg := makeCgroup(t, "/sys/fs/cgroup/unified", "auditd-ns-ctl-"+id)
	prog := privateCopy(t, dir, "/bin/cat", "cat-for-test")
	key, other := testKey("exec"), testKey("other")
	metrics := fmt.Sprintf("127.0.0.1:%d", port(t))
	writeConfig(t, dir, fmt.Sprintf("state_dir: %s/state\nmetrics_address: %s\n", dir, metrics),
		"-D\n"+execRule(prog, key)+"-a always,exit -F arch=b64 -S uname -F exe="+prog+" -k "+other+"\n")
	d := start(t, ctlk, dir)
	busyHost(t)

	file := filepath.Join(dir, "web.yaml")
	must(t, os.WriteFile(file, []byte(fmt.Sprintf("name: web\ncgroup: %s\ndeliver: {file: %s/web/audit.log}\nqueue: {memory: 1MiB, spool: 1MiB}\n", cg, dir)), 0o600))
	if out, err := ctl(t, dir, "register", file); err != nil {
		t.Fatalf("ctl register: %v\n%s", err, out)
	}
	if out, err := ctl(t, dir, "register", file); err == nil || !strings.Contains(out, "already registered") {
		t.Errorf("registering twice: %v\n%s", err, out)
	}
	webLog := filepath.Join(dir, "web/audit.log")
	for i := 1; i <= 3; i++ {
		holdIn(t, cg, prog, func() bool { return keyCount(webLog, key) >= i }, fmt.Sprintf("exec %d in web's target", i))
	}
	scrape := func() string {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatalf("scraping metrics: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := ausearchCount(t, webLog, "-k", key); got != 3 {
		t.Errorf("web's target has %d exec events, want 3", got)
	}
	m1 := scrape()

	// New rules: keep nothing but key other.
	rulesFile := filepath.Join(dir, "rules.yaml")
	must(t, os.WriteFile(rulesFile, []byte("- keep: {key: "+other+"}\n- default: drop\n"), 0o600))
	if out, err := ctl(t, dir, "rules", "push", "web", rulesFile); err != nil {
		t.Fatalf("ctl rules push: %v\n%s", err, out)
	}
	// A push that cannot be saved is refused and not applied: the store's
	// file is made a directory with something in it, which no rename
	// replaces, root's included. The running rules stay those saved.
	stored := filepath.Join(dir, "state/containers/web.yaml")
	must(t, os.RemoveAll(stored))
	must(t, os.MkdirAll(filepath.Join(stored, "x"), 0o700))
	unsaved := filepath.Join(dir, "unsaved.yaml")
	must(t, os.WriteFile(unsaved, []byte("- keep: {key: "+key+"}\n- keep: {key: a}\n- keep: {key: b}\n"), 0o600))
	if out, err := ctl(t, dir, "rules", "push", "web", unsaved); err == nil {
		t.Errorf("a push that could not be saved succeeded:\n%s", out)
	}
	if out, err := ctl(t, dir, "containers", "--json"); err != nil || !strings.Contains(out, `"rules": 1,`) && !strings.Contains(out, `"rules":1,`) {
		t.Errorf("after a push that could not be saved, web does not run its one saved rule: %v\n%s", err, out)
	}
	must(t, os.RemoveAll(stored))
	must(t, os.WriteFile(rulesFile, []byte("- keep: {syscall: nosuch}\n"), 0o600))
	if out, err := ctl(t, dir, "rules", "push", "web", rulesFile); err == nil || !strings.Contains(out, "rules.yaml:1:") {
		t.Errorf("pushing bad rules: %v\n%s", err, out)
	}
	// Each exec is held until web's rules have dropped it (its filtered
	// count): routed to web, not written.
	for i := uint64(1); i <= 2; i++ {
		holdIn(t, cg, prog, func() bool { return webFiltered(t, dir) >= i }, fmt.Sprintf("exec %d filtered by web's rules", i))
	}
	if got := ausearchCount(t, webLog, "-k", key); got != 3 {
		t.Errorf("after pushing rules that drop exec, web has %d exec events, want still 3", got)
	}

	out, err := ctl(t, dir, "containers")
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "web") || !strings.Contains(out, "file:"+dir+"/web/audit.log") {
		t.Errorf("ctl containers: %v\n%s", err, out)
	}
	out, err = ctl(t, dir, "containers", "--json")
	var list []struct {
		Name      string `json:"name"`
		Delivered uint64 `json:"delivered"`
		Filtered  uint64 `json:"filtered"`
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Name != "web" || list[0].Delivered == 0 || list[0].Filtered != 2 {
		t.Errorf("ctl containers --json: %v %+v\n%s", err, list, out)
	}
	out, err = ctl(t, dir, "status", "--json")
	if err != nil || !strings.Contains(out, `"attribution": "cgroup"`) && !strings.Contains(out, `"attribution":"cgroup"`) {
		t.Errorf("ctl status --json: %v\n%s", err, out)
	}
	// The process-events tracker attributed web's events: its counters,
	// the missed execs and ambiguous lookups among them, are in the status
	// and the metrics.
	var st struct {
		Tracker *struct {
			Attribution string  `json:"attribution"`
			Events      uint64  `json:"events"`
			Hits        uint64  `json:"hits"`
			ExecMissed  *uint64 `json:"exec_missed"`
			Ambiguous   *uint64 `json:"ambiguous"`
		} `json:"tracker"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Tracker == nil || st.Tracker.Attribution != "cgroup" ||
		st.Tracker.Events == 0 || st.Tracker.Hits == 0 || st.Tracker.ExecMissed == nil || st.Tracker.Ambiguous == nil {
		t.Errorf("ctl status --json has no tracker counters (exec_missed, ambiguous) of the attribution: %v\n%s", err, out)
	}
	if out, err := ctl(t, dir, "status"); err != nil || !regexp.MustCompile(`(?m)^tracker: +cgroup, [1-9][0-9]* process events, .*[0-9]+ execs missed.* [0-9]+ ambiguous`).MatchString(out) {
		t.Errorf("ctl status has no tracker line: %v\n%s", err, out)
	}
	m2 := scrape()
	for _, name := range []string{"auditd_ns_tracker_missed_execs_total", "auditd_ns_tracker_ambiguous_lookups_total", "auditd_ns_tracker_hit_lookups_total"} {
		if !regexp.MustCompile(`(?m)^# HELP ` + name + ` .+\n(?:#.*\n)*` + name + `\{attribution="cgroup"\} [0-9]`).MatchString(m2) {
			t.Errorf("metrics have no %s with its HELP:\n%s", name, m2)
		}
	}
	if m1 == m2 || !strings.Contains(m2, "web") {
		t.Errorf("metrics did not move between scrapes:\n%s", m2)
	}
	if !regexp.MustCompile(`auditd_ns_container_delivery_latency_seconds_count\{container="web"\} [1-9]`).MatchString(m2) {
		t.Errorf("no delivery latency measured for web's delivered copies:\n%s", m2)
	}

	if out, err := ctl(t, dir, "unregister", "web"); err != nil {
		t.Fatalf("ctl unregister: %v\n%s", err, out)
	}
	if out, _ := ctl(t, dir, "containers", "--json"); strings.Contains(out, "web") {
		t.Errorf("web still listed after unregister:\n%s", out)
	}
	d.stop()
	if !bytes.Contains([]byte(d.stderrText()), []byte("unregistered container")) {
		t.Errorf("no unregistration in the daemon's log")
	}
}
