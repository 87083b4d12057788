package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// ociBundle is a runc bundle of a static busybox whose hooks call
// `auditd-ns oci-hook` against a daemon's socket with an admin's config.
type ociBundle struct {
	runc, dir, sock, config string
	spec                    map[string]any
}

func newOCIBundle(t *testing.T, dir, sock, config string) *ociBundle {
	t.Helper()
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("needs runc (Debian package runc)")
	}
	b := &ociBundle{runc: runc, dir: filepath.Join(dir, "bundle"), sock: sock, config: config}
	busyboxRoot(t, filepath.Join(b.dir, "rootfs"))
	if out, err := exec.Command(runc, "spec", "--bundle", b.dir).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v %s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(b.dir, "config.json"))
	must(t, err)
	must(t, json.Unmarshal(raw, &b.spec))
	proc := b.spec["process"].(map[string]any)
	proc["terminal"] = false
	// Two execve of busybox in the container: runc's start of env, then
	// env's exec of true.
	proc["args"] = []string{"/bin/busybox", "env", "/bin/busybox", "true"}
	hook := func(stage string) []any {
		return []any{map[string]any{"path": binary, "args": []string{"auditd-ns", "oci-hook", "--socket", sock, "--config", config, stage}, "timeout": 20}}
	}
	b.spec["hooks"] = map[string]any{"createRuntime": hook("createRuntime"), "poststop": hook("poststop")}
	return b
}

// run runs container id with annotations (org.auditd-ns.* keys, prefix
// cut) and returns runc's output.
func (b *ociBundle) run(t *testing.T, id string, ann map[string]string) (string, error) {
	t.Helper()
	a := map[string]string{}
	for k, v := range ann {
		a["org.auditd-ns."+k] = v
	}
	b.spec["annotations"] = a
	raw, _ := json.MarshalIndent(b.spec, "", " ")
	must(t, os.WriteFile(filepath.Join(b.dir, "config.json"), raw, 0o644))
	out, err := exec.Command(b.runc, "run", "--bundle", b.dir, id).CombinedOutput()
	exec.Command(b.runc, "delete", "--force", id).Run()
	return string(out), err
}

// busyboxRoot makes root a container's root file system: a static
// busybox as /bin/busybox and /bin/sh.
func busyboxRoot(t *testing.T, root string) {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs a static busybox (Debian package busybox-static)")
	}
	must(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	if out, err := exec.Command("cp", busybox, filepath.Join(root, "bin", "busybox")).CombinedOutput(); err != nil {
		t.Fatalf("copying busybox: %v %s", err, out)
	}
	must(t, os.Symlink("busybox", filepath.Join(root, "bin", "sh")))
}

// hookTest is what every OCI hook test sets up first: the kernel's audit
// subsystem taken, a directory, and in it the daemon's control socket
// and the hook's config.
type hookTest struct {
	t                 *testing.T
	ctl               *source.Control
	dir, sock, config string
}

// newHookTest takes the kernel and writes the hook config that hookConf
// returns, given DIR/files (an empty directory), or when hookConf is nil
// an admin's config allowing file targets in DIR/files only (and rules in
// DIR/rules; no parents or remote ports).
func newHookTest(t *testing.T, hookConf func(files string) string) *hookTest {
	t.Helper()
	needTools(t)
	h := &hookTest{t: t, ctl: testkernel.Take(t), dir: t.TempDir()}
	h.sock, h.config = filepath.Join(h.dir, "control.sock"), filepath.Join(h.dir, "oci-hook.yaml")
	must(t, os.MkdirAll(h.files(), 0o755))
	if hookConf == nil {
		rules := filepath.Join(h.dir, "rules")
		must(t, os.MkdirAll(rules, 0o755))
		hookConf = func(files string) string { return fmt.Sprintf("files: {dirs: [%q]}\nrules: {dir: %q}\n", files, rules) }
	}
	must(t, os.WriteFile(h.config, []byte(hookConf(h.files())), 0o600))
	return h
}

// files is where the default hook config allows file targets.
func (h *hookTest) files() string { return filepath.Join(h.dir, "files") }

// start starts the daemon with the audit rules (after -D), its state in
// the directory, and keeps the host busy.
func (h *hookTest) start(rules string) *daemon {
	h.t.Helper()
	writeConfig(h.t, h.dir, fmt.Sprintf("state_dir: %s/state\n", h.dir), "-D\n"+rules)
	d := start(h.t, h.ctl, h.dir)
	busyHost(h.t)
	return d
}

// TestIntegrationOCIHookDaemon runs a busybox container with the real runc,
// its hooks calling `auditd-ns oci-hook` against the real daemon: the
// container is registered at createRuntime under its OCI id, its
// processes' events reach its file target inside the hook config's
// directory (and the host log), and it is unregistered at poststop.
func TestIntegrationOCIHookDaemon(t *testing.T) {
	h := newHookTest(t, nil)
	b := newOCIBundle(t, h.dir, h.sock, h.config)
	bb := filepath.Join(b.dir, "rootfs", "bin", "busybox")
	target := filepath.Join(h.files(), "tenant", "audit.log")
	key := testKey("oci")
	d := h.start(execRule(bb, key))
	id := fmt.Sprintf("auditd-ns-oci-%d", os.Getpid())
	out, err := b.run(t, id, map[string]string{"deliver.file": target, "required": "true"})
	if err != nil {
		t.Fatalf("runc run: %v\n%s\ndaemon:\n%s", err, out, d.stderrText())
	}
	waitKeyCount(d.log, key, 2, 30*time.Second)
	waitKeyCount(target, key, 2, 30*time.Second)
	d.stop()
	if got := ausearchCount(t, d.log, "-k", key); got != 2 {
		t.Errorf("host log: %d oci events, want 2", got)
	}
	if got := ausearchCount(t, target, "-k", key); got != 2 {
		t.Errorf("the container's target: %d oci events, want 2\ndaemon:\n%s", got, d.stderrText())
	}
	for _, want := range []string{"registered container", `name=` + id, "unregistered container"} {
		if !strings.Contains(d.stderrText(), want) {
			t.Errorf("the daemon's log lacks %q", want)
		}
	}
}

// TestIntegrationOCIHookHostileAnnotations runs containers with the real
// runc and the real daemon whose annotations name host facts: a host file,
// the cgroup root, another tenant as parent, the host's network
// namespace, a rules file read as root, another container's name. Each
// container is refused with an error naming the annotation, and the host
// is unchanged: no file is created or written, the daemon's containers are
// the same, and the poststop of a container named like the admin's leaves
// the admin's registered.
func TestIntegrationOCIHookHostileAnnotations(t *testing.T) {
	h := newHookTest(t, nil)
	dir, files := h.dir, h.files()
	b := newOCIBundle(t, dir, h.sock, h.config)
	d := h.start("")

	// The host admin's containers: "victim", and "tenant-b" (the stream
	// another tenant reads).
	hostDir := filepath.Join(dir, "host")
	must(t, os.MkdirAll(hostDir, 0o755))
	victimFile := filepath.Join(hostDir, "victim.log")
	secret := filepath.Join(hostDir, "secret.yaml")
	must(t, os.WriteFile(secret, []byte("- keep: {type: EXECVE}\n"), 0o600))
	cgB := makeCgroup(t, "/sys/fs/cgroup/unified", fmt.Sprintf("auditd-ns-oci-b-%d", os.Getpid()))
	for name, src := range map[string]string{
		"victim":   fmt.Sprintf("name: victim\nid: 424242\ndeliver: {file: %s}\n", victimFile),
		"tenant-b": fmt.Sprintf("name: tenant-b\ncgroup: %s\ndeliver: {file: %s/b.log}\n", cgB, hostDir),
	} {
		f := filepath.Join(dir, name+".yaml")
		must(t, os.WriteFile(f, []byte(src), 0o600))
		if out, err := ctl(t, dir, "register", f); err != nil {
			t.Fatalf("registering %s: %v\n%s", name, err, out)
		}
	}
	before, _ := ctl(t, dir, "containers", "--json")
	snapshot := func() map[string]string {
		m := map[string]string{}
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			// Not the daemon's own files: its state, log and stderr.
			if err == nil && !fi.IsDir() && !strings.HasPrefix(p, filepath.Join(dir, "state")) && !strings.HasPrefix(p, b.dir) && p != d.log &&
				!strings.HasSuffix(p, ".sock") && !strings.HasSuffix(p, ".err") {
				m[p] = fmt.Sprint(fi.Size(), fi.ModTime())
			}
			return nil
		})
		return m
	}
	host := snapshot()
	// The poststop of a container registered against these rules would
	// hide it from the list: the daemon's log tells every registration.
	registrations := func() int { return strings.Count(d.stderrText(), " registered container") }
	registered := registrations()

	id := fmt.Sprintf("auditd-ns-oci-%d", os.Getpid())
	inBase := filepath.Join(files, "web.log")
	for _, tc := range []struct {
		name string
		id   string
		ann  map[string]string
		want string
	}{
		{"a host file", id, map[string]string{"deliver.file": filepath.Join(hostDir, "created-as-root.log")}, "not inside a directory the hook config"},
		{"a host file by ..", id, map[string]string{"deliver.file": files + "/../host/created-as-root.log"}, "give a clean path"},
		{"the cgroup root", id, map[string]string{"deliver.file": inBase, "cgroup": "/sys/fs/cgroup"}, "org.auditd-ns.cgroup (the hook registers the cgroup of the container's own process"},
		{"another tenant's stream", id, map[string]string{"deliver.file": inBase, "parent": "tenant-b"}, `parent "tenant-b": not among the parents`},
		{"the host's netns", id, map[string]string{"deliver.remote": "127.0.0.1:22", "deliver.netns": "/proc/1/ns/net"}, "org.auditd-ns.deliver.netns (a remote target is dialled from the container's own network namespace"},
		{"a remote port", id, map[string]string{"deliver.remote": "127.0.0.1:22"}, "port 22 is not among the ports"},
		{"a rules file read as root", id, map[string]string{"deliver.file": inBase, "rules": secret}, "not inside " + filepath.Join(dir, "rules")},
		{"another container's name", id, map[string]string{"deliver.file": inBase, "name": "victim"}, "org.auditd-ns.name (the container's name is its OCI id)"},
		{"an OCI id naming the admin's container", "victim", map[string]string{"deliver.file": inBase}, `a container named "victim" is already registered (by the host admin)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ann := map[string]string{"required": "true"}
			for k, v := range tc.ann {
				ann[k] = v
			}
			out, err := b.run(t, tc.id, ann)
			out = strings.ReplaceAll(out, `\"`, `"`) // runc quotes the hook's stderr
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("runc run: %v\n%s\nwant: %s", err, out, tc.want)
			}
			if after, _ := ctl(t, dir, "containers", "--json"); !sameContainers(before, after) {
				t.Errorf("the daemon's containers changed:\nbefore %s\nafter %s", before, after)
			}
			if n := registrations(); n != registered {
				t.Errorf("the daemon registered %d containers:\n%s", n-registered, d.stderrText())
				registered = n
			}
			if got := snapshot(); fmt.Sprint(got) != fmt.Sprint(host) {
				t.Errorf("host files changed:\nbefore %v\nafter %v", host, got)
			}
		})
	}

	// Not required: the container runs unaudited, and its poststop must
	// not unregister the admin's container of the same name.
	if out, err := b.run(t, "victim", map[string]string{"deliver.file": inBase}); err != nil {
		t.Errorf("runc run victim: %v\n%s", err, out)
	}
	if after, _ := ctl(t, dir, "containers", "--json"); !sameContainers(before, after) {
		t.Errorf("the poststop of a container named victim changed the daemon's containers:\nbefore %s\nafter %s\ndaemon:\n%s", before, after, d.stderrText())
	}

	// Two containers never claim one cgroup: tenant-b's is taken.
	f := filepath.Join(dir, "c2.yaml")
	must(t, os.WriteFile(f, []byte(fmt.Sprintf("name: c2\ncgroup: %s\ndeliver: {file: %s/c2.log}\n", cgB, hostDir)), 0o600))
	if out, err := ctl(t, dir, "register", f); err == nil || !strings.Contains(out, fmt.Sprintf(`cgroup %s is already claimed by container "tenant-b"`, cgB)) {
		t.Errorf("registering a second container in tenant-b's cgroup: %v\n%s", err, out)
	}
	d.stop()
}

// sameContainers compares two `ctl containers --json` by name, target
// and cgroup (not by their changing figures).
func sameContainers(a, b string) bool {
	key := func(s string) string {
		var cs []struct{ Name, Target, Cgroup, Parent string }
		if json.Unmarshal([]byte(s), &cs) != nil {
			return "unparsable: " + s
		}
		return fmt.Sprint(cs)
	}
	return key(a) == key(b)
}
