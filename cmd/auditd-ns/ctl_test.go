package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/control/controltest"
)

// testServer serves an empty in-memory backend on a fresh socket.
func testServer(t *testing.T) (*controltest.Backend, string) {
	t.Helper()
	b, err := controltest.New()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "control.sock")
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&control.Server{Backend: b}).Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return b, path
}

func ctl(t *testing.T, sock string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := ctlCmd(append([]string{"--socket", sock}, args...), &out)
	return out.String(), err
}

func mustCtl(t *testing.T, sock string, args ...string) string {
	t.Helper()
	out, err := ctl(t, sock, args...)
	if err != nil {
		t.Fatalf("ctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCtlContainers(t *testing.T) {
	b, sock := testServer(t)
	host := writeFile(t, "host.yaml", "name: tenant\nid: 100\ndeliver: {remote: \"127.0.0.1:6000\"}\n")
	if got := mustCtl(t, sock, "register", host); got != "registered tenant (remote:127.0.0.1:6000)\n" {
		t.Errorf("register said %q", got)
	}
	rules := writeFile(t, "rules.yaml", "- keep: {type: EXECVE}\n")
	mustCtl(t, sock, "register", "--name", "web", "--id", "101", "--parent", "tenant", "--file", "/srv/web/audit.log", "--rules", rules, "--memory", "1MiB")
	mustCtl(t, sock, "register", "--name", "legacy", "--cgroup", "/sys/fs/cgroup/legacy", "--remote", "10.0.0.2:60", "--netns", "/run/netns/legacy", "--view", "host")
	b.SetFigures("web", control.ContainerInfo{Connected: true, Queued: 3, Delivered: 1200, Dropped: 7})

	want := `NAME    ID                            PARENT  VIEW       TARGET                                CONNECTED  QUEUED  DELIVERED  DROPPED  LAST ERROR
legacy  cgroup:/sys/fs/cgroup/legacy  -       host       remote:10.0.0.2:60@/run/netns/legacy  no         0       0          0        -
tenant  100                           -       container  remote:127.0.0.1:6000                 no         0       0          0        -
web     101                           tenant  container  file:/srv/web/audit.log               yes        3       1200       7        -
`
	if got := mustCtl(t, sock, "containers"); got != want {
		t.Errorf("containers:\ngot\n%s\nwant\n%s", got, want)
	}

	var got []control.ContainerInfo
	out := mustCtl(t, sock, "containers", "--json")
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("containers --json: %v\n%s", err, out)
	}
	if len(got) != 3 || got[0].View != "host" || got[2].View != "container" || got[2].Name != "web" || *got[2].ID != 101 || got[2].Rules != 1 || got[2].Delivered != 1200 || got[0].ID != nil {
		t.Errorf("containers --json:\n%s", out)
	}
	if !strings.Contains(out, `"id": "101"`) {
		t.Errorf("the id is not a string in JSON:\n%s", out)
	}
}

func TestCtlEmptyJSON(t *testing.T) {
	_, sock := testServer(t)
	if got := mustCtl(t, sock, "containers", "--json"); got != "[]\n" {
		t.Errorf("no containers in JSON: %q", got)
	}
}

func TestCtlStatus(t *testing.T) {
	b, sock := testServer(t)
	b.SetKernel(control.KernelStatus{Enabled: 1, PID: 77, Lost: 2, Backlog: 5, BacklogLimit: 8192, Attribution: control.AttributionContid})
	b.SetHostLog(control.HostLogStatus{Path: "/var/log/audit/audit.log", Records: 10, Bytes: 999, Rotations: 1})
	b.SetRouter(control.RouterStatus{Records: 9, Events: 3, Partial: 1, Overflow: 4})
	b.SetTracker(&control.TrackerStatus{Attribution: control.AttributionCgroup, Watching: true, Events: 120, ExecMissed: 3,
		Moves: 2, Gone: 1, Hits: 40, ParentHits: 5, Ambiguous: 6, Misses: 7, Processes: 300, Idle: true, ProcReads: 11})
	want := `kernel:      enabled 1, audit pid 77, lost 2, backlog 5/8192, attribution contid
host log:    /var/log/audit/audit.log, writing, 10 records, 999 bytes, 1 rotations, 0 dropped
router:      9 records, 3 events (1 partial), 0 unattributed, 4 overflow, 0 malformed, 0 bad chains
tracker:     cgroup (idle: no container to follow), 120 process events, 11 /proc reads, 0 overruns, 3 execs missed, 2 self-moves, 1 gone movers; lookups: 40 hits, 5 by parent, 6 ambiguous, 7 missed; 300 processes, 0 dropped
containers:  0
`
	if got := mustCtl(t, sock, "status"); got != want {
		t.Errorf("status:\ngot\n%s\nwant\n%s", got, want)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(mustCtl(t, sock, "status", "--json")), &st); err != nil || st.Kernel.Lost != 2 || st.HostLog.Bytes != 999 || st.Router.Overflow != 4 ||
		st.Tracker == nil || st.Tracker.ExecMissed != 3 || st.Tracker.Ambiguous != 6 ||
		!st.Tracker.Idle || st.Tracker.ProcReads != 11 {
		t.Errorf("status --json: %+v %v", st, err)
	}
}

func TestCtlUnregisterAndRules(t *testing.T) {
	b, sock := testServer(t)
	mustCtl(t, sock, "register", "--name", "web", "--id", "5", "--file", "/srv/web.log")
	rules := writeFile(t, "r.yaml", "- keep: {type: EXECVE}\n- default: drop\n")
	if got := mustCtl(t, sock, "rules", "push", "web", rules); got != "pushed 1 rules to web\n" {
		t.Errorf("rules push said %q", got)
	}
	bad := writeFile(t, "bad.yaml", "- keep: {nosuch: 1}\n")
	if _, err := ctl(t, sock, "rules", "push", "web", bad); err == nil || !strings.Contains(err.Error(), "bad.yaml:1:") {
		t.Errorf("pushing bad rules: %v", err)
	}
	if got := mustCtl(t, sock, "unregister", "web", "--spool"); got != "unregistered web (spool): delivered 0, spooled 0, dropped 0\n" {
		t.Errorf("unregister said %q", got)
	}
	if _, err := ctl(t, sock, "unregister", "web"); err == nil || !strings.Contains(err.Error(), `not-found: unregistering: not found: no container "web"`) {
		t.Errorf("unregistering twice: %v", err)
	}
	calls := strings.Join(b.Calls(), "|")
	if calls != "register web|rules-push web|unregister web spool 30s" {
		t.Errorf("calls: %s", calls)
	}
}

func TestCtlErrors(t *testing.T) {
	_, sock := testServer(t)
	bad := writeFile(t, "c.yaml", "name: x\nid: 1\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"register", bad}, "c.yaml:1:1: deliver is missing"},
		{[]string{"register", "--name", "x", "--id", "1"}, "--file or --remote: deliver"},
		{[]string{"register", bad, "--name", "y"}, "not both"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{}, "no command"},
		{[]string{"unregister"}, "one container NAME"},
		{[]string{"rules", "pull", "x", "y"}, `unknown command "pull" (commands: push)`},
		{[]string{"containers", "extra"}, `unexpected argument "extra"`},
		{[]string{"--socket", "/nonexistent/x.sock", "status"}, "no auditd-ns daemon answers on /nonexistent/x.sock"},
	} {
		if _, err := ctl(t, sock, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ctl %q: got %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestCtlTimeout(t *testing.T) {
	_, sock := testServer(t)
	start := time.Now()
	if _, err := ctl(t, sock, "--timeout", "1ns", "status"); err == nil {
		t.Error("a 1ns timeout did not end the call")
	}
	if time.Since(start) > 5*time.Second {
		t.Error("the timeout was not applied")
	}
}
