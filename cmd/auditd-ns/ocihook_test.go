package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/control/controltest"
)

// recordedState is the state runc 1.1 wrote on a createRuntime hook's
// stdin (status "creating"), with the annotations of the test's config.
const recordedState = `{"ociVersion":"1.0.2-dev","id":"%s","status":"creating","pid":%d,"bundle":"/run/containers/web-7f3a","annotations":{%s}}`

func stateJSON(pid int, ann map[string]string) string { return stateOf("web-7f3a", pid, ann) }

func stateOf(id string, pid int, ann map[string]string) string {
	var kv []string
	for k, v := range ann {
		kv = append(kv, fmt.Sprintf("%q:%q", k, v))
	}
	return fmt.Sprintf(recordedState, id, pid, strings.Join(kv, ","))
}

func stopped(state string) string { return strings.Replace(state, `"creating"`, `"stopped"`, 1) }

// fakeProc makes a procfs with one task, pid 4242, in the cgroup
// /system.slice/web-7f3a.scope with a network namespace of its own; the
// hook itself (self) is in /user.slice. patched adds the task's
// audit_containerid.
func fakeProc(t *testing.T, patched bool) string {
	t.Helper()
	proc := t.TempDir()
	task := filepath.Join(proc, "4242")
	self := filepath.Join(proc, "self")
	for _, d := range []string{filepath.Join(task, "ns"), filepath.Join(self, "ns")} {
		must(t, os.MkdirAll(d, 0o755))
	}
	must(t, os.WriteFile(filepath.Join(task, "cgroup"), []byte("0::/system.slice/web-7f3a.scope\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(self, "cgroup"), []byte("0::/user.slice/session-1.scope\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(task, "ns", "net"), nil, 0o444))
	must(t, os.WriteFile(filepath.Join(self, "ns", "net"), nil, 0o444))
	must(t, os.WriteFile(filepath.Join(self, "mountinfo"), []byte(
		"22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n"+
			"30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"), 0o644))
	if patched {
		must(t, os.WriteFile(filepath.Join(task, "audit_containerid"), []byte("18446744073709551615\n"), 0o600))
	}
	return proc
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// hookEnv is an admin's hook config and the directories it allows.
type hookEnv struct {
	config, files, rules string
}

// newHookEnv writes a hook config allowing file targets in FILES (and in
// FILES/per-id/{id}), remote port 6000, the parent "pod", rules files in
// RULES and queues up to 8MiB in memory; extra is appended.
func newHookEnv(t *testing.T, extra string) hookEnv {
	t.Helper()
	dir := t.TempDir()
	e := hookEnv{config: filepath.Join(dir, "oci-hook.yaml"), files: filepath.Join(dir, "files"), rules: filepath.Join(dir, "rules")}
	must(t, os.MkdirAll(filepath.Join(e.files, "per-id"), 0o755))
	must(t, os.MkdirAll(e.rules, 0o755))
	must(t, os.WriteFile(filepath.Join(e.rules, "exec.yaml"), []byte("- keep: {type: EXECVE}\n"), 0o644))
	cfg := fmt.Sprintf("files: {dirs: [%q, \"%s/per-id/{id}\"]}\nremote: {ports: [6000]}\nparents: [pod]\nrules: {dir: %s}\nqueue: {max_memory: 8MiB}\n%s",
		e.files, e.files, e.rules, extra)
	must(t, os.WriteFile(e.config, []byte(cfg), 0o600))
	return e
}

func runHook(t *testing.T, sock, proc, config, state string, args ...string) (string, error) {
	t.Helper()
	var warn bytes.Buffer
	err := ociHookCmd(append([]string{"--socket", sock, "--proc", proc, "--config", config}, args...), strings.NewReader(state), &warn)
	return warn.String(), err
}

func TestOCIHookStockKernel(t *testing.T) {
	b, sock := testServer(t)
	proc := fakeProc(t, false)
	e := newHookEnv(t, "")
	state := stateJSON(4242, map[string]string{
		"org.auditd-ns.deliver.remote": "127.0.0.1:6000",
		"org.auditd-ns.rules":          "exec.yaml",
		"org.auditd-ns.memory":         "8MiB",
		"io.kubernetes.pod.name":       "web",
	})
	if warn, err := runHook(t, sock, proc, e.config, state, "createRuntime"); err != nil || warn != "" {
		t.Fatalf("createRuntime: %v %s", err, warn)
	}
	c := b.Tree().ByName("web-7f3a")
	if c == nil {
		t.Fatal("the container was not registered")
	}
	netns := filepath.Join(proc, "4242", "ns", "net")
	if c.Cgroup != "/sys/fs/cgroup/system.slice/web-7f3a.scope" || c.HasID() || c.Deliver.String() != "remote:127.0.0.1:6000@"+netns ||
		c.Rules.Len() != 1 || c.Owner != "oci-hook" || c.Queue.Memory != 8<<20 || c.Queue.Spool != 0 {
		t.Errorf("registered %+v", c)
	}

	stop := stopped(stateJSON(0, map[string]string{"org.auditd-ns.deliver.remote": "127.0.0.1:6000", "org.auditd-ns.drain-timeout": "5s"}))
	if warn, err := runHook(t, sock, proc, e.config, stop); err != nil || warn != "" { // stage from the status
		t.Fatalf("poststop: %v %s", err, warn)
	}
	if got := strings.Join(b.Calls(), "|"); got != "register web-7f3a|unregister web-7f3a drain 5s" {
		t.Errorf("calls: %s", got)
	}
	// A second poststop (the runtime retrying) finds nothing to do.
	if _, err := runHook(t, sock, proc, e.config, stop, "poststop"); err != nil {
		t.Errorf("second poststop: %v", err)
	}
}

func TestOCIHookPatchedKernel(t *testing.T) {
	b, sock := testServer(t)
	ctx := context.Background()
	c, err := control.Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(ctx, "pod.yaml", []byte("name: pod\nid: 9\ndeliver: {file: /srv/pod/audit.log}\n"), false); err != nil {
		t.Fatal(err)
	}
	e := newHookEnv(t, "")
	proc := fakeProc(t, true)
	state := stateJSON(4242, map[string]string{
		"org.auditd-ns.deliver.file": "web/audit.log", // relative: in the first of files.dirs
		"org.auditd-ns.parent":       "pod",
	})
	if warn, err := runHook(t, sock, proc, e.config, state, "createRuntime"); err != nil || warn != "" {
		t.Fatalf("createRuntime: %v %s", err, warn)
	}
	want := deriveContid("web-7f3a")
	got, _ := os.ReadFile(filepath.Join(proc, "4242", "audit_containerid"))
	if string(got) != fmt.Sprint(want) {
		t.Errorf("audit_containerid = %q, want %d", got, want)
	}
	w := b.Tree().ByName("web-7f3a")
	if w == nil || w.ID != want || w.Parent != "pod" || w.Cgroup != "" || w.Deliver.File != filepath.Join(e.files, "web", "audit.log") || w.Owner != "oci-hook" {
		t.Fatalf("registered %+v", w)
	}
	if !strings.Contains(string(w.Source), "beneath: "+e.files+"\n") {
		t.Errorf("the file target is not to be opened beneath %s:\n%s", e.files, w.Source)
	}
}

// TestOCIHookPerIDDirectory: a files.dirs entry ending in {id} is the
// container's own directory, created by the hook; another container's
// directory is not inside it.
func TestOCIHookPerIDDirectory(t *testing.T) {
	b, sock := testServer(t)
	e := newHookEnv(t, "")
	e2 := strings.Replace(mustRead(t, e.config), fmt.Sprintf("dirs: [%q, ", e.files), "dirs: [", 1)
	must(t, os.WriteFile(e.config, []byte(e2), 0o600))
	proc := fakeProc(t, false)
	own := filepath.Join(e.files, "per-id", "web-7f3a", "audit.log")
	if _, err := runHook(t, sock, proc, e.config, stateJSON(4242, map[string]string{"org.auditd-ns.deliver.file": own, "org.auditd-ns.required": "true"}), "createRuntime"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Dir(own)); err != nil || !fi.IsDir() {
		t.Errorf("the container's directory: %v", err)
	}
	if c := b.Tree().ByName("web-7f3a"); c == nil || c.Deliver.File != own {
		t.Fatalf("registered %+v", c)
	}
	other := filepath.Join(e.files, "per-id", "db-1", "audit.log")
	_, err := runHook(t, sock, fakeProc(t, false), e.config, stateOf("web-2", 4242, map[string]string{"org.auditd-ns.deliver.file": other, "org.auditd-ns.required": "true"}), "createRuntime")
	if err == nil || !strings.Contains(err.Error(), "not inside a directory the hook config") {
		t.Errorf("another container's directory: %v", err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}

func TestDeriveContid(t *testing.T) {
	seen := map[uint64]string{}
	for i := 0; i < 10000; i++ {
		id := fmt.Sprintf("container-%d", i)
		v := deriveContid(id)
		if v == 0 || v >= 1<<53 {
			t.Fatalf("deriveContid(%q) = %d, out of range", id, v)
		}
		if o, dup := seen[v]; dup {
			t.Fatalf("%q and %q share contid %d", id, o, v)
		}
		seen[v] = id
	}
	// Fixed: the docs promise a stable derivation.
	if got := deriveContid("web-7f3a"); got != deriveContid("web-7f3a") || got == deriveContid("web-7f3b") {
		t.Error("derivation is not a function of the id")
	}
}

func TestOCIHookFailures(t *testing.T) {
	_, sock := testServer(t)
	proc := fakeProc(t, false)
	e := newHookEnv(t, "")
	down := filepath.Join(t.TempDir(), "none.sock")
	served := map[string]string{"org.auditd-ns.deliver.remote": "127.0.0.1:6000"}
	required := map[string]string{"org.auditd-ns.deliver.remote": "127.0.0.1:6000", "org.auditd-ns.required": "true"}

	warn, err := runHook(t, down, proc, e.config, stateJSON(4242, served), "createRuntime")
	if err != nil || !strings.Contains(warn, "connecting to the auditd-ns control socket") || !strings.Contains(warn, "the container goes on") {
		t.Errorf("daemon down, not required: err %v, warning %q", err, warn)
	}
	if _, err := runHook(t, down, proc, e.config, stateJSON(4242, required), "createRuntime"); err == nil || !strings.Contains(err.Error(), `createRuntime of container "web-7f3a"`) {
		t.Errorf("daemon down, required: %v", err)
	}
	if warn, err := runHook(t, down, proc, "/nonexistent", stateJSON(4242, nil), "createRuntime"); err != nil || warn != "" {
		t.Errorf("a container without auditd-ns annotations: %v %q", err, warn)
	}
	typo := map[string]string{"org.auditd-ns.deliver.remote": "127.0.0.1:6000", "org.auditd-ns.requird": "true"}
	if warn, _ := runHook(t, sock, proc, e.config, stateJSON(4242, typo), "createRuntime"); !strings.Contains(warn, "unknown annotations org.auditd-ns.requird") {
		t.Errorf("a misspelt annotation: %q", warn)
	}
	badTarget := map[string]string{"org.auditd-ns.deliver.remote": "nowhere", "org.auditd-ns.required": "true"}
	if _, err := runHook(t, sock, proc, e.config, stateJSON(4242, badTarget), "createRuntime"); err == nil || !strings.Contains(err.Error(), `deliver.remote "nowhere" is not HOST:PORT`) {
		t.Errorf("a bad target: %v", err)
	}
	if _, err := runHook(t, sock, proc, e.config, "not json", "createRuntime"); err == nil || !strings.Contains(err.Error(), "reading the OCI state") {
		t.Errorf("bad state: %v", err)
	}
	if _, err := runHook(t, sock, proc, e.config, stateJSON(4242, required), "startContainer"); err == nil || !strings.Contains(err.Error(), "unknown hook stage") {
		t.Errorf("unknown stage: %v", err)
	}
	if _, err := runHook(t, sock, proc, filepath.Join(t.TempDir(), "none.yaml"), stateJSON(4242, required), "createRuntime"); err == nil || !strings.Contains(err.Error(), "none.yaml: does not exist") {
		t.Errorf("no hook config: %v", err)
	}
	for text, want := range map[string]string{
		"files: {dir: [/x]}\n":             "field dir not found",
		"files: {dirs: [x/y]}\n":           `files.dirs[0] "x/y": give a clean absolute directory`,
		"files: {dirs: [\"/a/{id}/b\"]}\n": "with {id} only as its whole last element",
		"remote: {ports: [70000]}\n":       "remote.ports[0] 70000 is not a port",
		"rules: {dir: /etc/../etc}\n":      `rules.dir "/etc/../etc"`,
		"queue: {max_spool: lots}\n":       "queue.max_spool:",
	} {
		cfg := writeFile(t, "oci-hook.yaml", text)
		if _, err := runHook(t, sock, proc, cfg, stateJSON(4242, required), "createRuntime"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("hook config %q: %v, want %s", text, err, want)
		}
	}
	loose := writeFile(t, "oci-hook.yaml", "remote: {ports: [6000]}\n")
	must(t, os.Chmod(loose, 0o666))
	if _, err := runHook(t, sock, proc, loose, stateJSON(4242, required), "createRuntime"); err == nil || !strings.Contains(err.Error(), "is writable by group or others") {
		t.Errorf("a hook config anyone may write: %v", err)
	}
}

var (
	hookBinOnce sync.Once
	hookBin     string
	hookBinErr  error
)

// TestMain removes the binary hookBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if hookBin != "" {
		os.RemoveAll(filepath.Dir(hookBin))
	}
	os.Exit(code)
}

// hookBinary builds the auditd-ns binary once for the tests that run the
// hook as a runtime does.
func hookBinary(t *testing.T) string {
	t.Helper()
	hookBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "auditd-ns-hook")
		if err != nil {
			hookBinErr = err
			return
		}
		hookBin = filepath.Join(dir, "auditd-ns")
		if out, err := exec.Command("go", "build", "-o", hookBin, ".").CombinedOutput(); err != nil {
			hookBinErr = fmt.Errorf("building auditd-ns: %v\n%s", err, out)
		}
	})
	if hookBinErr != nil {
		t.Fatal(hookBinErr)
	}
	return hookBin
}

// execHook runs the real hook binary with state on stdin and returns its
// stderr and exit error.
func execHook(t *testing.T, sock, proc, config, state string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(hookBinary(t), append([]string{"oci-hook", "--socket", sock, "--proc", proc, "--config", config}, args...)...)
	cmd.Stdin = strings.NewReader(state)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// TestOCIHookAnnotationsChooseOnlyWhatTheAdminAllows runs the real hook
// binary as a runtime would, with annotations that name host facts: each
// is refused with an error that names it, nothing is registered, and the
// container's process is not given a contid.
func TestOCIHookAnnotationsChooseOnlyWhatTheAdminAllows(t *testing.T) {
	e := newHookEnv(t, "")
	b, sock := seededServer(t, filepath.Join(e.files, "b.log"))
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "secret.yaml"), []byte("- keep: {type: EXECVE}\n"), 0o600))
	must(t, os.Symlink(outside, filepath.Join(e.files, "escape")))
	must(t, os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(e.rules, "link.yaml")))
	must(t, os.Mkdir(filepath.Join(e.files, "dir.log"), 0o755))
	file := filepath.Join(e.files, "web.log")
	for _, tc := range []struct {
		name string
		id   string
		ann  map[string]string
		want string
	}{
		{"a host file outside the allowed directories", "", map[string]string{"deliver.file": filepath.Join(outside, "x.log")}, "not inside a directory the hook config"},
		{"a file target climbing out with ..", "", map[string]string{"deliver.file": e.files + "/../x.log"}, "give a clean path"},
		{"a file target through a symlink", "", map[string]string{"deliver.file": filepath.Join(e.files, "escape", "x.log")}, "passes through a symlink: refused"},
		{"a file target that is a directory", "", map[string]string{"deliver.file": filepath.Join(e.files, "dir.log")}, "is not a regular file"},
		{"the host's root cgroup", "", map[string]string{"deliver.file": file, "cgroup": "/sys/fs/cgroup"}, "org.auditd-ns.cgroup (the hook registers the cgroup of the container's own process"},
		{"another tenant as parent", "", map[string]string{"deliver.file": file, "parent": "tenant-b"}, `parent "tenant-b": not among the parents the hook config`},
		{"the host's network namespace", "", map[string]string{"deliver.remote": "127.0.0.1:6000", "deliver.netns": "/proc/1/ns/net"}, "org.auditd-ns.deliver.netns (a remote target is dialled from the container's own network namespace"},
		{"a remote port not allowed", "", map[string]string{"deliver.remote": "127.0.0.1:22"}, "port 22 is not among the ports"},
		{"a rules file outside the rules directory", "", map[string]string{"deliver.file": file, "rules": filepath.Join(outside, "secret.yaml")}, "not inside " + e.rules},
		{"a rules file through a symlink", "", map[string]string{"deliver.file": file, "rules": "link.yaml"}, "passes through a symlink: refused"},
		{"a rules file climbing out with ..", "", map[string]string{"deliver.file": file, "rules": "../x/secret.yaml"}, "give a clean path"},
		{"another container's name", "", map[string]string{"deliver.file": file, "name": "tenant-b"}, "org.auditd-ns.name (the container's name is its OCI id)"},
		{"another container's contid", "", map[string]string{"deliver.file": file, "contid": "9"}, "org.auditd-ns.contid (the audit container ID is derived"},
		{"a queue above the maximum", "", map[string]string{"deliver.file": file, "memory": "2GiB"}, `memory "2GiB": more than the 8388608 bytes`},
		{"an OCI id colliding with the admin's container", "tenant-b", map[string]string{"deliver.file": file}, `a container named "tenant-b" is already registered (by the host admin)`},
		{"an OCI id that is not a name", "..", map[string]string{"deliver.file": file}, `the OCI id ".." cannot name a container`},
		{"a file another container delivers to", "", map[string]string{"deliver.file": filepath.Join(e.files, "b.log")}, `container "tenant-b" delivers there already`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := fakeProc(t, tc.id == "tenant-b")
			ann := map[string]string{"org.auditd-ns.required": "true"}
			for k, v := range tc.ann {
				ann["org.auditd-ns."+k] = v
			}
			id := tc.id
			if id == "" {
				id = "web-7f3a"
			}
			stderr, err := execHook(t, sock, proc, e.config, stateOf(id, 4242, ann), "createRuntime")
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Errorf("hook: %v\nstderr: %s\nwant: %s", err, stderr, tc.want)
			}
			if got := strings.Join(b.Calls(), "|"); got != "register tenant-b" {
				t.Errorf("the daemon was asked: %s", got)
			}
			if got, _ := os.ReadFile(filepath.Join(proc, "4242", "audit_containerid")); len(got) > 0 && string(got) != "18446744073709551615\n" {
				t.Errorf("the container's process was given contid %s", got)
			}
			if _, err := os.Lstat(filepath.Join(outside, "x.log")); err == nil {
				t.Error("a file was created outside the allowed directories")
			}
		})
	}
}

// seededServer is a test server where the host admin registered
// tenant-b, in cgroup /sys/fs/cgroup/tenant-b, delivering to file.
func seededServer(t *testing.T, file string) (*controltest.Backend, string) {
	t.Helper()
	b, sock := testServer(t)
	c, err := control.Dial(context.Background(), sock)
	must(t, err)
	defer c.Close()
	_, err = c.Register(context.Background(), "tenant-b.yaml", []byte("name: tenant-b\ncgroup: /sys/fs/cgroup/tenant-b\ndeliver: {file: "+file+"}\n"), false)
	must(t, err)
	return b, sock
}

// TestIntegrationOCIHookRunc starts a busybox container with the real runc,
// the hook configured for createRuntime and poststop, against a test
// server, and checks that the container was registered with the cgroup it
// ran in and unregistered when it stopped.
func TestIntegrationOCIHookRunc(t *testing.T) {
	if testing.Short() {
		t.Skip("runs containers with runc: skipped with -short")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("needs runc (Debian package runc) on PATH")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs a static busybox (Debian package busybox-static) on PATH")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run containers with runc; running as uid", os.Geteuid())
	}
	b, sock := testServer(t)
	bin := hookBinary(t)
	e := newHookEnv(t, "")
	bundle := t.TempDir()
	os.MkdirAll(filepath.Join(bundle, "rootfs", "bin"), 0o755)
	if out, err := exec.Command("cp", busybox, filepath.Join(bundle, "rootfs", "bin", "busybox")).CombinedOutput(); err != nil {
		t.Fatalf("copying busybox: %v %s", err, out)
	}
	os.Symlink("busybox", filepath.Join(bundle, "rootfs", "bin", "sh"))
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v %s", err, out)
	}
	id := fmt.Sprintf("auditd-ns-hook-test-%d", os.Getpid())
	writeRuncConfig(t, bundle, bin, sock, e)

	cmd := exec.Command(runc, "run", "--bundle", bundle, id)
	out, err := cmd.CombinedOutput()
	if err != nil {
		exec.Command(runc, "delete", "--force", id).Run()
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	cg := strings.TrimSpace(string(out))
	if got := strings.Join(b.Calls(), "|"); got != "register "+id+"|unregister "+id+" drain 3s" {
		t.Fatalf("calls: %s (container output %q)", got, out)
	}
	var v2 string
	for _, line := range strings.Split(cg, "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			v2 = p
		}
	}
	mnt, err := cgroup2Mount("/proc/self/mountinfo")
	if err != nil || v2 == "" {
		t.Fatalf("no cgroup v2 here (%v); the container printed %q", err, cg)
	}
	if got := b.Registrations()[0].Cgroup; got != filepath.Join(mnt, v2) {
		t.Errorf("registered with cgroup %q; the container ran in %q under %s", got, v2, mnt)
	}

	// With the daemon down, a container that requires auditd-ns does not
	// start.
	writeRuncConfig(t, bundle, bin, filepath.Join(t.TempDir(), "down.sock"), e)
	out, err = exec.Command(runc, "run", "--bundle", bundle, id+"-down").CombinedOutput()
	exec.Command(runc, "delete", "--force", id+"-down").Run()
	if err == nil || !strings.Contains(string(out), "connecting to the auditd-ns control socket") {
		t.Errorf("runc run with the daemon down: %v\n%s", err, out)
	}
}

// writeRuncConfig makes the bundle's config.json run a command that prints
// its cgroup, with the hook and the annotations of a served container.
func writeRuncConfig(t *testing.T, bundle, bin, sock string, e hookEnv) {
	t.Helper()
	path := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	proc := c["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"sh", "-c", "busybox cat /proc/self/cgroup"}
	hook := func(stage string) []any {
		return []any{map[string]any{"path": bin, "args": []string{"auditd-ns", "oci-hook", "--socket", sock, "--config", e.config, stage}, "timeout": 20}}
	}
	c["hooks"] = map[string]any{"createRuntime": hook("createRuntime"), "poststop": hook("poststop")}
	c["annotations"] = map[string]string{
		"org.auditd-ns.deliver.file":  filepath.Join(e.files, "x.log"),
		"org.auditd-ns.required":      "true",
		"org.auditd-ns.drain-timeout": "3s",
	}
	raw, _ = json.MarshalIndent(c, "", " ")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOCIHookPoststopLeavesOthers: the poststop of a container whose OCI
// id names a container the hook did not register leaves that container
// registered, and says so.
func TestOCIHookPoststopLeavesOthers(t *testing.T) {
	e := newHookEnv(t, "")
	b, sock := seededServer(t, filepath.Join(e.files, "b.log"))
	ann := map[string]string{"org.auditd-ns.deliver.file": filepath.Join(e.files, "x.log"), "org.auditd-ns.required": "true"}
	stderr, err := execHook(t, sock, fakeProc(t, false), e.config, stopped(stateOf("tenant-b", 0, ann)), "poststop")
	if err == nil || !strings.Contains(stderr, `unregistering "tenant-b": conflict: it was not registered by oci-hook`) || !strings.Contains(stderr, "left registered") {
		t.Errorf("poststop: %v\nstderr: %s", err, stderr)
	}
	if b.Tree().ByName("tenant-b") == nil || strings.Join(b.Calls(), "|") != "register tenant-b" {
		t.Errorf("tenant-b was unregistered: %v", b.Calls())
	}
}

// TestOCIHookCgroupIsTheContainers: the hook claims only the cgroup of
// the container's process, never the cgroup root nor the runtime's own
// cgroup (where host processes are), and never one another container has.
func TestOCIHookCgroupIsTheContainers(t *testing.T) {
	e := newHookEnv(t, "")
	b, sock := seededServer(t, filepath.Join(e.files, "b.log"))
	ann := map[string]string{"org.auditd-ns.deliver.file": filepath.Join(e.files, "web.log"), "org.auditd-ns.required": "true"}
	for cg, want := range map[string]string{
		"0::/\n":                           "is in the root cgroup /sys/fs/cgroup: refusing",
		"0::/user.slice/session-1.scope\n": "is in the runtime's own cgroup",
		"0::/tenant-b\n":                   `cgroup /sys/fs/cgroup/tenant-b is already claimed by container "tenant-b"`,
	} {
		proc := fakeProc(t, false)
		must(t, os.WriteFile(filepath.Join(proc, "4242", "cgroup"), []byte(cg), 0o644))
		stderr, err := execHook(t, sock, proc, e.config, stateJSON(4242, ann), "createRuntime")
		if err == nil || !strings.Contains(stderr, want) {
			t.Errorf("cgroup %q: %v\nstderr: %s\nwant: %s", cg, err, stderr, want)
		}
	}
	if got := strings.Join(b.Calls(), "|"); got != "register tenant-b" {
		t.Errorf("the daemon was asked: %s", got)
	}
}

// TestOCIHookHostNetns: a container sharing the host's network namespace
// gets no remote target unless the config says remote: {host_netns: true}.
func TestOCIHookHostNetns(t *testing.T) {
	b, sock := testServer(t)
	ann := map[string]string{"org.auditd-ns.deliver.remote": "127.0.0.1:6000", "org.auditd-ns.required": "true"}
	proc := fakeProc(t, false)
	must(t, os.Remove(filepath.Join(proc, "4242", "ns", "net")))
	must(t, os.Link(filepath.Join(proc, "self", "ns", "net"), filepath.Join(proc, "4242", "ns", "net")))
	e := newHookEnv(t, "")
	stderr, err := execHook(t, sock, proc, e.config, stateJSON(4242, ann), "createRuntime")
	if err == nil || !strings.Contains(stderr, "the container shares the host's network namespace") || b.Tree().ByName("web-7f3a") != nil {
		t.Errorf("host netns: %v\nstderr: %s", err, stderr)
	}
	e = newHookEnv(t, "")
	cfg := strings.Replace(mustRead(t, e.config), "remote: {ports: [6000]}", "remote: {ports: [6000], host_netns: true}", 1)
	must(t, os.WriteFile(e.config, []byte(cfg), 0o600))
	if stderr, err := execHook(t, sock, proc, e.config, stateJSON(4242, ann), "createRuntime"); err != nil || b.Tree().ByName("web-7f3a") == nil {
		t.Errorf("host netns allowed: %v\nstderr: %s", err, stderr)
	}
}

// TestOCIHookExampleConfigs: configs/oci-hook.yaml is a valid hook config,
// and the runc hooks in configs/ call the hook for both stages with it.
func TestOCIHookExampleConfigs(t *testing.T) {
	dir := t.TempDir()
	src := mustRead(t, "../../configs/oci-hook.yaml")
	cfg := filepath.Join(dir, "oci-hook.yaml")
	must(t, os.WriteFile(cfg, []byte(src), 0o600))
	c, err := loadHookConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Files.Dirs[0] != "/var/log/auditd-ns/containers/{id}" || c.memory != 16<<20 || c.maxMemory != 64<<20 || c.maxSpool != 0 {
		t.Errorf("configs/oci-hook.yaml read as %+v", c)
	}
	var runc struct {
		Hooks map[string][]struct{ Args []string }
	}
	must(t, json.Unmarshal([]byte(mustRead(t, "../../configs/runc-hooks.json")), &runc))
	for _, stage := range []string{"createRuntime", "poststop"} {
		if h := runc.Hooks[stage]; len(h) != 1 || strings.Join(h[0].Args, " ") != "auditd-ns oci-hook --config "+defaultHookConfig+" "+stage {
			t.Errorf("configs/runc-hooks.json %s: %+v", stage, h)
		}
	}
}

// The cgroup2 mount is read from mountinfo with its octal escapes undone,
// and the first cgroup2 mount wins over a later one.
func TestCgroup2MountEscapes(t *testing.T) {
	p := writeFile(t, "mountinfo", "22 1 0:21 / /proc rw - proc proc rw\n"+
		"30 24 0:26 / /sys/fs/cgroup\\040v2 rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"+
		"31 24 0:27 / /elsewhere rw - cgroup2 cgroup2 rw\n")
	if got, err := cgroup2Mount(p); err != nil || got != "/sys/fs/cgroup v2" {
		t.Errorf("cgroup2Mount = %q, %v; want /sys/fs/cgroup v2", got, err)
	}
	none := writeFile(t, "mountinfo", "22 1 0:21 / /proc rw - proc proc rw\n")
	if _, err := cgroup2Mount(none); err == nil || !strings.Contains(err.Error(), "none in") {
		t.Errorf("no cgroup2 mount: %v", err)
	}
}

// The container's root is read from its uid and gid maps: the host's own
// ids (the identity map) give nothing to chown.
func TestContainerRoot(t *testing.T) {
	proc := t.TempDir()
	write := func(uid, gid string) {
		must(t, os.MkdirAll(filepath.Join(proc, "7"), 0o755))
		must(t, os.WriteFile(filepath.Join(proc, "7", "uid_map"), []byte(uid), 0o644))
		must(t, os.WriteFile(filepath.Join(proc, "7", "gid_map"), []byte(gid), 0o644))
	}
	write("         0          0 4294967295\n", "         0          0 4294967295\n")
	if o, err := containerRoot(proc, 7); o != nil || err != nil {
		t.Errorf("identity map: %v, %v", o, err)
	}
	write("         0     200000      65536\n", "         1     300000      10\n         0     300100      1\n")
	if o, err := containerRoot(proc, 7); err != nil || o == nil || o.uid != 200000 || o.gid != 300100 {
		t.Errorf("user namespace: %+v, %v", o, err)
	}
	write("         0     200000      x\n", "")
	if _, err := containerRoot(proc, 7); err == nil {
		t.Error("a bad uid_map line was accepted")
	}
}
