package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
)

func init() {
	tests = append(tests, struct {
		name string
		fn   func(*T)
	}{"e2e/auditd-ns-tenant-view", testTenantView})
}

// viewFiles is the daemon's config for the tenant view: one container,
// known by contid 810, view: container (the default), with a file target.
var viewFiles = map[string]string{
	"auditd-ns.yaml": `log_file: /tmp/e2ev/audit.log
audit_rules: audit.rules
containers_dir: containers
state_dir: /tmp/e2ev/state
control_socket: /tmp/e2ev/control.sock
space_left: 1
admin_space_left: 1
flush: INCREMENTAL
freq: 1
`,
	"audit.rules":          "-a always,exit -F arch=b64 -S chmod -S fchmodat -k e2e\n",
	"containers/view.yaml": "name: view\nid: 810\ndeliver: {file: /tmp/e2ev/view.log}\n",
}

// testTenantView: a container's init in its own pid and user namespaces
// (root there is host uid 100000) is given contid 810 and changes the mode
// of a file it created. The container's copy shows the init as pid 1, its
// parent (the host process that made it) as 0, and its uid and the file's
// owner as 0; the host log keeps the host pid and uid 100000.
func testTenantView(t *T) {
	a := needDaemon(t)
	if err := os.MkdirAll("/tmp/e2ev/data", 0o777); err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.Chmod("/tmp/e2ev/data", 0o777); err != nil {
		t.Fatalf("%v", err)
	}
	stop := e2eDaemon(t, a, "/tmp/e2ev", viewFiles)
	defer stop()
	defer e2eOutput(t, "/tmp/e2ev")
	// A stub in new pid and user namespaces: it waits for its contid,
	// then creates a file and changes its mode as the container's init.
	cmd := newStubCmd("/bin/busybox", "sh", "-c", `touch /tmp/e2ev/data/f && exec chmod 600 /tmp/e2ev/data/f`)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
	}
	p := startCmd(t, cmd)
	waitExe(t, p.pid(), "/bin/busybox")
	host := p.pid()
	wantErrno(t, "set 810", writeContid(host, "810"), nil)
	p.release(t)
	if out, err := p.lines(); err != nil {
		t.Fatalf("the container's init: %v: %s", err, strings.Join(out, "\n"))
	}
	stop()

	// The chmod event in the host log, by the init's host pid.
	hostLog, _ := os.ReadFile("/tmp/e2ev/audit.log")
	copyLog, _ := os.ReadFile("/tmp/e2ev/view.log")
	chmod := regexp.MustCompile(`^type=SYSCALL msg=(audit\([0-9.:]+\)): arch=c000003e syscall=(90|268) `)
	var stamp string
	for _, l := range strings.Split(string(hostLog), "\n") {
		if m := chmod.FindStringSubmatch(l); m != nil && strings.Contains(l, fmt.Sprintf(" pid=%d ", host)) {
			stamp = m[1]
			for _, f := range []string{" uid=100000 ", " euid=100000 "} {
				if !strings.Contains(l, f) {
					t.Errorf("host log: the chmod lacks %q: %s", f, l)
				}
			}
		}
	}
	if stamp == "" {
		t.Fatalf("host log: no chmod by pid %d:\n%s", host, hostLog)
	}
	event := func(log []byte) map[string]string {
		out := map[string]string{}
		for _, l := range strings.Split(string(log), "\n") {
			if !strings.Contains(l, " msg="+stamp+":") {
				continue
			}
			typ, _, _ := strings.Cut(l, " ")
			if typ == "type=PATH" && !strings.Contains(l, `name="/tmp/e2ev/data/f"`) {
				continue
			}
			out[typ] = l
		}
		return out
	}
	hostEv, copyEv := event(hostLog), event(copyLog)
	if !strings.Contains(hostEv["type=PATH"], " ouid=100000 ") {
		t.Errorf("host log: the file's PATH record lacks ouid=100000: %q", hostEv["type=PATH"])
	}
	sc, pa := copyEv["type=SYSCALL"], copyEv["type=PATH"]
	if sc == "" || pa == "" {
		t.Fatalf("the container's copy lacks the chmod event %s (SYSCALL %q, PATH %q):\n%s", stamp, sc, pa, copyLog)
	}
	for _, f := range []string{" pid=1 ", " ppid=0 ", " uid=0 ", " euid=0 ", " gid=0 "} {
		if !strings.Contains(sc, f) {
			t.Errorf("the copy's SYSCALL lacks %q: %s", f, sc)
		}
	}
	if !strings.Contains(pa, " ouid=0 ") || !strings.Contains(pa, " ogid=0 ") {
		t.Errorf("the copy's PATH lacks ouid=0 ogid=0: %s", pa)
	}
}

// newStubCmd is stub's command, not started: a single-threaded shell that
// waits for a line on stdin and then execs argv.
func newStubCmd(argv ...string) *exec.Cmd {
	args := append([]string{"sh", "-c", `read x; exec "$@"`, "sh"}, argv...)
	return exec.Command("/bin/busybox", args...)
}

// e2eOutput shows the daemon's output of a test that failed.
func e2eOutput(t *T, dir string) {
	if len(t.fails) > 0 {
		b, _ := os.ReadFile(dir + "/daemon.out")
		t.Errorf("auditd-ns output:\n%s", b)
	}
}
