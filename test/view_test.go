package test

import (
	"bytes"
	"context"
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

// viewRun is one run of a container: what its processes saw of themselves.
type viewRun struct {
	initHost          int    // the init's host pid
	initPid, initPPid string // as the init saw them ($$, $PPID)
	childPid          string // the child's pid as the container's ps showed it
	childPPid         string
	out               string
}

// runContainer starts init (a shell) as a runtime starts a container's
// init: in cgroup dir, in new pid, user and mount namespaces, root there
// being host uid 100000. The init mounts its own /proc, reports itself,
// runs a child shell that reports itself through the container's ps, and
// creates file as the container's root with touch. Its programs are
// private copies, which only this test runs.
func runContainer(t *testing.T, dir, init, touch, file string) viewRun {
	t.Helper()
	cg, err := os.Open(dir)
	must(t, err)
	defer cg.Close()
	script := fmt.Sprintf(`mount --make-rprivate / && mount -t proc proc /proc || exit 1
echo init $$ $PPID
%s -c 'echo child $(ps -o pid= -o ppid= -p $$)'
exec %s %s`, init, touch, file)
	// The runtime's init execs the container's program once it is in
	// place (the tracker has read it): a process placed in a cgroup by
	// clone3 is known there from the tracker's read of its fork, and an
	// event before that read is attributed to no container.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `sleep 0.2; exec "$0" -c "$1"`, init, script)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		UseCgroupFD: true,
		CgroupFD:    int(cg.Fd()),
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the container: %v\n%s", err, out.Bytes())
	}
	r := viewRun{initHost: cmd.Process.Pid, out: out.String()}
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "init":
			r.initPid, r.initPPid = f[1], f[2]
		case len(f) == 3 && f[0] == "child":
			r.childPid, r.childPPid = f[1], f[2]
		}
	}
	if r.initPid != "1" || r.initPPid != "0" || r.childPid == "" || r.childPPid != "1" {
		t.Fatalf("the container did not see itself in its own namespaces: %+v", r)
	}
	st, err := os.Stat(file)
	must(t, err)
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 100000 {
		t.Fatalf("the container's root created %s as host uid %d, want 100000", file, uid)
	}
	return r
}

// TestIntegrationTenantView: a container with its own pid and user
// namespaces, registered by cgroup on a stock kernel, delivering to the
// real auditd as its tenant (view: container, the default), and another
// one with view: host writing to a file. The tenant's ausearch finds the
// container's events by the pids its own $$ and ps showed, its init's
// ppid is 0 (the runtime is not in its pid namespace), and the file its
// root created shows uid=0 and ouid=0, while the host log keeps the host
// pids and uid 100000. The view: host container's copies keep the host's
// values. Only the test's own programs (private copies) are counted.
func TestIntegrationTenantView(t *testing.T) {
	needTools(t)
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	files, err := os.MkdirTemp("", "auditd-ns-view-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(files) })
	must(t, os.Chmod(files, 0o777)) // the containers' root is host uid 100000

	a := makeCgroup(t, "/sys/fs/cgroup/unified", fmt.Sprintf("auditd-ns-view-a-%d", os.Getpid()))
	b := makeCgroup(t, "/sys/fs/cgroup/unified", fmt.Sprintf("auditd-ns-view-b-%d", os.Getpid()))
	initA, initB := privateCopy(t, files, "/bin/sh", "sh-view-a"), privateCopy(t, files, "/bin/sh", "sh-view-b")
	touchA, touchB := privateCopy(t, files, "/usr/bin/touch", "touch-view-a"), privateCopy(t, files, "/usr/bin/touch", "touch-view-b")
	keyA, keyB := testKey("view-a"), testKey("view-b")
	fileKeyA, fileKeyB := testKey("view-a-file"), testKey("view-b-file")
	fileRule := func(prog, key string) string {
		return fmt.Sprintf("-a always,exit -F arch=b64 -S openat -F exe=%s -F success=1 -k %s\n", prog, key)
	}

	ns := netns(t, fmt.Sprintf("ans-view-%d", os.Getpid()))
	p := port(t)
	tenantLog := tenantAuditd(t, ns, p)
	containerFile(t, dir, "a", fmt.Sprintf("name: a\ncgroup: %s\ndeliver: {remote: 127.0.0.1:%d, netns: %s}\n", a, p, ns))
	containerFile(t, dir, "b", fmt.Sprintf("name: b\ncgroup: %s\nview: host\ndeliver: {file: %s/b/audit.log}\n", b, dir))
	writeConfig(t, dir, fmt.Sprintf("containers_dir: %s/containers\nstate_dir: %s/state\n", dir, dir),
		"-D\n"+execRule(initA, keyA)+execRule(initB, keyB)+fileRule(touchA, fileKeyA)+fileRule(touchB, fileKeyB))
	d := start(t, ctl, dir)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(tenantLog)
			t.Logf("the tenant's log:\n%s\ndaemon:\n%s", tail(b), d.stderrText())
		}
	})
	busyHost(t)

	ra := runContainer(t, a, initA, touchA, filepath.Join(files, "made-by-a"))
	rb := runContainer(t, b, initB, touchB, filepath.Join(files, "made-by-b"))

	// The tenant's copies, as its own ausearch finds them.
	var made string
	waitFor(t, 15*time.Second, func() bool {
		made = ausearchText(tenantLog, "-k", fileKeyA)
		return countIfAny(t, tenantLog, keyA) == 2 && strings.Contains(made, "nametype=CREATE")
	}, "the tenant's auditd to log the container's events")
	d.stop()
	// By the pids the container's $$ and ps showed.
	init := ausearchText(tenantLog, "-k", keyA, "-p", "1")
	child := ausearchText(tenantLog, "-k", keyA, "-p", ra.childPid)
	if init == "" || child == "" {
		t.Errorf("tenant a: ausearch -p 1 found %q, -p %s found %q; the tenant has:\n%s", init, ra.childPid, child, ausearchText(tenantLog, "-k", keyA))
	}
	syscallLine := func(text string) string {
		return regexp.MustCompile(`(?m)^(node=\S+ )?type=SYSCALL .*$`).FindString(text)
	}
	for _, c := range []struct {
		what, line string
		want       []string
	}{
		{"the init's execve", syscallLine(init), []string{" pid=1 ", " ppid=0 ", " uid=0 ", " euid=0 ", " gid=0 "}},
		{"the child's execve", syscallLine(child), []string{" pid=" + ra.childPid + " ", " ppid=1 ", " uid=0 "}},
		{"touch's openat", syscallLine(made), []string{" uid=0 ", " euid=0 ", " fsuid=0 ", " gid=0 "}},
		{"the file created", regexp.MustCompile(`(?m)^(node=\S+ )?type=PATH .*nametype=CREATE.*$`).FindString(made), []string{" ouid=0 ", " ogid=0 ", "made-by-a"}},
	} {
		for _, w := range c.want {
			if !strings.Contains(c.line+" ", w) {
				t.Errorf("tenant a: %s: %q lacks %q\n%s", c.what, c.line, w, ra.out)
			}
		}
	}
	if strings.Contains(init+child+made, "100000") {
		t.Errorf("tenant a's copies show host uid 100000:\n%s%s%s", init, child, made)
	}

	// The host log keeps what the kernel wrote.
	host := ausearchText(d.log, "-k", fileKeyA)
	if pl := regexp.MustCompile(`(?m)^(node=\S+ )?type=PATH .*nametype=CREATE.*$`).FindString(host); !strings.Contains(pl, " ouid=100000 ") {
		t.Errorf("host log: the file created: %q, want ouid=100000", pl)
	}
	hostInit := ausearchText(d.log, "-k", keyA, "-p", fmt.Sprint(ra.initHost))
	if l := syscallLine(hostInit); !strings.Contains(l, fmt.Sprintf(" ppid=%d ", os.Getpid())) || !strings.Contains(l, " uid=100000 ") {
		t.Errorf("host log: the init's execve: %q, want ppid=%d (this test, its runtime) and uid=100000", l, os.Getpid())
	}

	// view: host: the copies are the host log's.
	bLog := filepath.Join(dir, "b/audit.log")
	if n := ausearchText(bLog, "-k", keyB, "-p", "1"); n != "" {
		t.Errorf("tenant b (view: host) has an event of pid 1:\n%s", n)
	}
	bInit := syscallLine(ausearchText(bLog, "-k", keyB, "-p", fmt.Sprint(rb.initHost)))
	if !strings.Contains(bInit, fmt.Sprintf(" ppid=%d ", os.Getpid())) || !strings.Contains(bInit, " uid=100000 ") {
		t.Errorf("tenant b (view: host): the init's execve: %q, want the host's pid, ppid and uid", bInit)
	}
	bMade := regexp.MustCompile(`(?m)^(node=\S+ )?type=PATH .*nametype=CREATE.*$`).FindString(ausearchText(bLog, "-k", fileKeyB))
	if !strings.Contains(bMade, " ouid=100000 ") {
		t.Errorf("tenant b (view: host): the file created: %q, want ouid=100000", bMade)
	}
}

// ausearchText is the raw text of the events ausearch finds in file, ""
// when none (or the file is not there yet).
func ausearchText(file string, args ...string) string {
	out, err := exec.Command("ausearch", append([]string{"-if", file, "--raw"}, args...)...).Output()
	if err != nil {
		return ""
	}
	return string(out)
}
