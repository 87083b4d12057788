package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testaudit"
)

// podman runs the real Debian podman, rootful, with crun, on storage of
// its own (nothing of the host's containers is touched), with the hooks
// directory holding configs/oci-hooks.json as shipped, its hook pointed at
// the test's binary, socket and hook config.
type podman struct {
	bin    string
	global []string
	image  string
}

func newPodman(t *testing.T, dir, sock, hookConfig string) *podman {
	t.Helper()
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("needs podman (Debian package podman)")
	}
	crun, err := exec.LookPath("crun")
	if err != nil {
		t.Skip("needs crun (Debian package crun)")
	}
	crunHybrid(t)
	// The run root holds conmon's sockets, whose paths must stay short.
	run := fmt.Sprintf("/run/ans-podman-%d", os.Getpid())
	t.Cleanup(func() { os.RemoveAll(run) })
	p := &podman{bin: bin, image: fmt.Sprintf("localhost/auditd-ns-busybox:%d", os.Getpid())}
	hooks := filepath.Join(dir, "hooks.d")
	must(t, os.MkdirAll(hooks, 0o755))
	p.global = []string{"--root", filepath.Join(dir, "storage"), "--runroot", run, "--runtime", crun,
		"--cgroup-manager", "cgroupfs", "--events-backend", "none", "--hooks-dir", hooks}
	t.Cleanup(func() { exec.Command(bin, append(p.global, "rm", "--all", "--force")...).Run() })

	// The hooks.d file as shipped, its hook pointed at this test's binary.
	raw, err := os.ReadFile("../configs/oci-hooks.json")
	must(t, err)
	var h map[string]any
	must(t, json.Unmarshal(raw, &h))
	hook := h["hook"].(map[string]any)
	hook["path"] = binary
	hook["args"] = []string{"auditd-ns", "oci-hook", "--socket", sock, "--config", hookConfig}
	raw, _ = json.MarshalIndent(h, "", " ")
	must(t, os.WriteFile(filepath.Join(hooks, "auditd-ns.json"), raw, 0o644))

	// An image imported from a busybox rootfs: no registry.
	root := filepath.Join(dir, "rootfs")
	busyboxRoot(t, root)
	tar := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", root, "-cf", tar, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	p.cmd(t, "import", tar, p.image)
	return p
}

func (p *podman) command(args ...string) *exec.Cmd {
	return exec.Command(p.bin, append(append([]string{}, p.global...), args...)...)
}

func (p *podman) cmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.command(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// runArgs are podman run's arguments for a container of uid (-1: podman's
// default) that runs argv with annotations (org.auditd-ns.* keys, prefix
// cut). The sandbox these tests run in has lower limits than podman's
// defaults.
func (p *podman) runArgs(name string, uid int, ann map[string]string, extra []string, argv ...string) []string {
	args := []string{"run", "--name", name, "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	if uid >= 0 {
		args = append(args, "--user", fmt.Sprintf("%d:%d", uid, uid))
	}
	for k, v := range ann {
		args = append(args, "--annotation", "org.auditd-ns."+k+"="+v)
	}
	args = append(append(args, extra...), p.image)
	return append(args, argv...)
}

// hugetlbV1 is the v1 hugetlb hierarchy crunHybrid mounts, once for the
// whole test binary: after an unmount the kernel gives hugetlb back to the
// unified hierarchy a little later, so a test after one that unmounted
// could find cgroup.controllers empty and still meet crun's refusal.
var hugetlbV1 struct {
	once sync.Once
	mnt  string // where it is mounted, "" when it is not
	skip string // why crun cannot run here, "" when it can
}

// crunHybrid lets crun run on this machine's hybrid cgroups: crun refuses
// a hybrid layout while the unified hierarchy holds a controller, and here
// it holds hugetlb only because no v1 hierarchy has it. A v1 hierarchy of
// hugetlb is mounted until every test is done (unmountHugetlbV1).
func crunHybrid(t *testing.T) {
	t.Helper()
	hugetlbV1.once.Do(func() {
		b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
		ctrl := strings.TrimSpace(string(b))
		if err != nil || ctrl == "" {
			return // pure v2, or hybrid with an empty unified hierarchy
		}
		if ctrl != "hugetlb" {
			hugetlbV1.skip = fmt.Sprintf("crun refuses this hybrid cgroup layout (cgroup v2 holds %s)", ctrl)
			return
		}
		mnt, err := os.MkdirTemp("", "auditd-ns-hugetlb")
		if err == nil {
			if err = syscall.Mount("cgroup", mnt, "cgroup", 0, "hugetlb"); err != nil {
				os.Remove(mnt)
			}
		}
		if err != nil {
			hugetlbV1.skip = fmt.Sprintf("crun refuses hybrid cgroups with hugetlb in cgroup v2, and mounting it as v1 failed: %v", err)
			return
		}
		hugetlbV1.mnt = mnt
	})
	if hugetlbV1.skip != "" {
		t.Skip(hugetlbV1.skip)
	}
}

// unmountHugetlbV1 undoes crunHybrid's mount; TestMain calls it when every
// test is done.
func unmountHugetlbV1() {
	if hugetlbV1.mnt != "" {
		syscall.Unmount(hugetlbV1.mnt, syscall.MNT_DETACH)
		os.Remove(hugetlbV1.mnt)
	}
}

// testUID is a uid no other process on the host uses: the tests' rules
// select the executions of the container's processes by it.
func testUID() int { return 3_000_000 + os.Getpid()%100_000 }

func uidRule(uid int, key string) string {
	return fmt.Sprintf("-a always,exit -F arch=b64 -S execve -F uid=%d -k %s\n", uid, key)
}

// TestIntegrationPodmanHook runs a container with the real podman and crun,
// the hook installed as configs/oci-hooks.json says (hooks.d, matched on
// the container's org.auditd-ns.deliver.file annotation), against the real
// daemon: the container is registered under its podman id at
// createRuntime, by its own cgroup, its processes' events reach its file
// target and the host log, and poststop unregisters it.
func TestIntegrationPodmanHook(t *testing.T) {
	h := newHookTest(t, nil)
	p := newPodman(t, h.dir, h.sock, h.config)
	uid, key := testUID(), testKey("podman")
	d := h.start(uidRule(uid, key))

	target := filepath.Join(h.files(), "web", "audit.log")
	name := fmt.Sprintf("ans-podman-%d", os.Getpid())
	// Two executions as uid: crun's of env, then env's of true.
	out, err := p.command(p.runArgs(name, uid, map[string]string{"deliver.file": target, "required": "true"}, []string{"--rm"},
		"/bin/busybox", "env", "/bin/busybox", "true")...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman run: %v\n%s\ndaemon:\n%s", err, out, d.stderrText())
	}
	// A container without the annotations is not the hook's: hooks.d's
	// "when" leaves it alone, and nothing is registered.
	plain := name + "-plain"
	if out, err := p.command(p.runArgs(plain, uid+1, nil, []string{"--rm"}, "/bin/busybox", "true")...).CombinedOutput(); err != nil {
		t.Fatalf("podman run (no annotations): %v\n%s", err, out)
	}
	waitKeyCount(d.log, key, 2, 30*time.Second)
	waitKeyCount(target, key, 2, 30*time.Second)
	d.stop()
	if got := ausearchCount(t, d.log, "-k", key); got != 2 {
		t.Errorf("host log: %d events of the container, want 2", got)
	}
	if got := ausearchCount(t, target, "-k", key); got != 2 {
		t.Errorf("the container's file target: %d events, want 2\ndaemon:\n%s", got, d.stderrText())
	}
	log := d.stderrText()
	if n := len(regexp.MustCompile(`: registered container: `).FindAllString(log, -1)); n != 1 || !strings.Contains(log, "unregistered container") {
		t.Errorf("want one container registered and then unregistered; the daemon's log:\n%s", log)
	}
	if !regexp.MustCompile(`: registered container: name=[0-9a-f]{64} target=file:` + regexp.QuoteMeta(target)).MatchString(log) {
		t.Errorf("the container was not registered under its podman id with its target:\n%s", log)
	}
}

// TestIntegrationPodmanRemoteInContainerNetns: a container with a network
// namespace of its own (podman --network none: only its loopback) gets a
// remote target at 127.0.0.1:PORT, which the daemon dials from inside that
// namespace, through /proc/PID/ns/net of the OCI state's pid: no named
// network namespace. The tenant is the real auditd listening on the
// container's own loopback.
func TestIntegrationPodmanRemoteInContainerNetns(t *testing.T) {
	auditd, err := exec.LookPath("auditd")
	if err != nil {
		t.Skip("needs the real auditd (Debian package auditd)")
	}
	port := port(t)
	h := newHookTest(t, func(string) string { return fmt.Sprintf("remote: {ports: [%d]}\n", port) })
	dir := h.dir
	p := newPodman(t, dir, h.sock, h.config)
	uid, key := testUID(), testKey("podman-remote")
	d := h.start(uidRule(uid, key))

	// The container waits on a FIFO (no execution while it waits), then
	// executes env, which executes true.
	gate := filepath.Join(dir, "gate")
	must(t, os.MkdirAll(gate, 0o777))
	must(t, syscall.Mkfifo(filepath.Join(gate, "go"), 0o666))
	name := fmt.Sprintf("ans-podman-remote-%d", os.Getpid())
	p.cmd(t, p.runArgs(name, uid, map[string]string{"deliver.remote": fmt.Sprintf("127.0.0.1:%d", port), "required": "true"},
		[]string{"--detach", "--volume", gate + ":/gate"},
		"/bin/busybox", "sh", "-c", "read x < /gate/go; exec /bin/busybox env /bin/busybox true")...)
	pid, err := strconv.Atoi(p.cmd(t, "inspect", "--format", "{{.State.Pid}}", name))
	if err != nil || pid <= 0 {
		t.Fatalf("the container's pid: %v", err)
	}

	// The tenant's auditd on the container's own loopback.
	tdir := t.TempDir()
	tlog := filepath.Join(tdir, "audit.log")
	must(t, os.WriteFile(filepath.Join(tdir, "auditd.conf"), []byte(testaudit.TenantAuditdConf(tlog, port, filepath.Join(tdir, "plugins"))), 0o600))
	must(t, os.MkdirAll(filepath.Join(tdir, "plugins"), 0o700))
	script := fmt.Sprintf("mount --make-rprivate / && mount -t tmpfs tmpfs /run && exec %s -n -s nochange -c %s", auditd, tdir)
	tenant := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(pid)+"/ns/net", "unshare", "--mount", "sh", "-c", script)
	terr, _ := os.Create(filepath.Join(tdir, "stderr"))
	tenant.Stdout, tenant.Stderr = terr, terr
	must(t, tenant.Start())
	t.Cleanup(func() { testaudit.Terminate(tenant, 5*time.Second) })
	listens := func() bool { return listensOn(fmt.Sprintf("/proc/%d/net", pid), port) }
	for deadline := time.Now().Add(10 * time.Second); !listens(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(terr.Name())
			n, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
			t.Fatalf("the tenant's auditd does not listen on %d in the container's network namespace; its output:\n%s\n/proc/%d/net/tcp:\n%s", port, b, pid, n)
		}
	}
	if listensOn("/proc/self/net", port) {
		t.Fatalf("port %d listens in the host's network namespace too: the test would not tell the namespaces apart", port)
	}

	f, err := os.OpenFile(filepath.Join(gate, "go"), os.O_WRONLY, 0)
	must(t, err)
	f.Write([]byte("go\n"))
	f.Close()
	if out, err := p.command("wait", name).CombinedOutput(); err != nil {
		t.Fatalf("podman wait: %v\n%s", err, out)
	}
	// podman rm runs the poststop hook: it unregisters the container once
	// its queue is delivered.
	p.cmd(t, "rm", name)
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(d.stderrText(), "unregistered container") }, "poststop to unregister the container")
	d.stop()
	testaudit.Terminate(tenant, 5*time.Second)
	host := ausearchCount(t, d.log, "-k", key)
	if host != 3 {
		t.Errorf("host log: %d events of the container, want 3 (sh, env, true)", host)
	}
	if got := ausearchCount(t, tlog, "-k", key); got != host {
		b, _ := os.ReadFile(terr.Name())
		t.Errorf("the tenant's auditd in the container's netns: %d events, the host log %d\ndaemon:\n%s\ntenant:\n%s", got, host, d.stderrText(), b)
	}
	if !strings.Contains(d.stderrText(), fmt.Sprintf("target=remote:127.0.0.1:%d@/proc/%d/ns/net", port, pid)) {
		t.Errorf("the target is not dialled through /proc/%d/ns/net:\n%s", pid, d.stderrText())
	}
}

// listensOn reports whether a TCP socket listens on port in the network
// namespace whose /proc/PID/net is dir (auditd listens on ::, so tcp6).
func listensOn(dir string, port int) bool {
	b, _ := os.ReadFile(filepath.Join(dir, "tcp"))
	b6, _ := os.ReadFile(filepath.Join(dir, "tcp6"))
	return strings.Contains(strings.ToUpper(string(b)), fmt.Sprintf(":%04X 00000000:0000 0A", port)) ||
		strings.Contains(strings.ToUpper(string(b6)), fmt.Sprintf(":%04X 00000000000000000000000000000000:0000 0A", port))
}

// TestIntegrationPodmanUserNamespaceFile: a container whose root is a high
// host uid (podman --uidmap) reads its own file target through a volume:
// the hook gives the container's {id} directory, and the daemon the file,
// to the host uid and gid of the container's root, from its uid and gid
// maps.
func TestIntegrationPodmanUserNamespaceFile(t *testing.T) {
	h := newHookTest(t, func(files string) string { return fmt.Sprintf("files: {dirs: [%q]}\n", filepath.Join(files, "{id}")) })
	files := h.files()
	p := newPodman(t, h.dir, h.sock, h.config)
	// The container's root is host uid base (a uid no other process has).
	base, key := testUID(), testKey("podman-userns")
	d := h.start(uidRule(base, key))

	name := fmt.Sprintf("ans-podman-userns-%d", os.Getpid())
	// Its own executions are written to its file while it waits, then it
	// reads the file.
	args := p.runArgs(name, -1, map[string]string{"deliver.file": "audit.log", "required": "true"},
		[]string{"--rm", "--uidmap", fmt.Sprintf("0:%d:65536", base), "--gidmap", fmt.Sprintf("0:%d:65536", base), "--volume", files + ":/audit:ro"},
		"/bin/busybox", "sh", "-c", "/bin/busybox true; /bin/busybox sleep 2; /bin/busybox cat /audit/*/audit.log")
	out, err := p.command(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman run: %v\n%s\ndaemon:\n%s", err, out, d.stderrText())
	}
	if !strings.Contains(string(out), `key="`+key+`"`) {
		t.Errorf("the container did not read its records from its file target:\n%s\ndaemon:\n%s", out, d.stderrText())
	}
	logs, _ := filepath.Glob(filepath.Join(files, "*", "audit.log"))
	if len(logs) != 1 {
		t.Fatalf("file targets: %v", logs)
	}
	for _, path := range []string{filepath.Dir(logs[0]), logs[0]} {
		var st syscall.Stat_t
		must(t, syscall.Stat(path, &st))
		if int(st.Uid) != base || int(st.Gid) != base {
			t.Errorf("%s is owned by %d:%d, want the container's root %d:%d", path, st.Uid, st.Gid, base, base)
		}
	}
	d.stop()
}
