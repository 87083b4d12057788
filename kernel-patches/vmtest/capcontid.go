package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func init() {
	tests = append(tests, []struct {
		name string
		fn   func(*T)
	}{
		{"capcontid/file", testCapFile},
		{"capcontid/nested-orchestrator", testCapNested},
		{"capcontid/without-flag", testCapWithoutFlag},
		{"capcontid/without-contid", testCapWithoutContid},
		{"capcontid/cannot-grant", testCapCannotGrant},
		{"capcontid/not-inherited", testCapNotInherited},
		{"capcontid/bound-to-userns", testCapBoundToUserns},
	}...)
}

func needCap(t *T) {
	needContid(t)
	if _, err := os.Stat(capPath(1)); err != nil {
		t.Skipf("no /proc/PID/audit_capcontainerid: kernel lacks the capcontid patch")
	}
}

func readCap(t *T, pid int) string {
	b, err := os.ReadFile(capPath(pid))
	if err != nil {
		t.Errorf("reading capcontid of %d: %v", pid, err)
	}
	return strings.TrimSpace(string(b))
}

func testCapFile(t *T) {
	needCap(t)
	p := sleeper(t)
	defer p.kill()
	if got := readCap(t, p.pid()); got != "0" {
		t.Errorf("default capcontid %q, want 0", got)
	}
	for _, c := range []struct {
		val  string
		want error
	}{{"2", unix.EINVAL}, {"x", unix.EINVAL}, {"-1", unix.EINVAL}, {"1\n", nil}, {"0", nil}, {"1", nil}} {
		wantErrno(t, "write capcontid "+c.val, writeFile(capPath(p.pid()), c.val), c.want)
	}
	if got := readCap(t, p.pid()); got != "1" {
		t.Errorf("capcontid %q after writing 1", got)
	}
}

// orchestrate runs argv as root of a new user namespace, in contid (if not
// empty, set on a stub before the namespace is made) and with capcontid
// (if cap) granted to the task that runs argv once it is in that
// namespace: the flag is bound to the grantee's user namespace and not
// inherited.
func orchestrate(t *T, contid string, cap bool, argv ...string) {
	inner := append([]string{"/bin/busybox", "sh", "-c", `echo pid $$; read x; exec "$@"`, "sh"}, argv...)
	p := stub(t, append([]string{"/init", "helper", "userns-run"}, inner...)...)
	defer p.kill()
	if contid != "" {
		wantErrno(t, "set "+contid, writeContid(p.pid(), contid), nil)
	}
	p.release(t)
	l, err := p.out.ReadString('\n')
	var pid int
	if _, serr := fmt.Sscanf(l, "pid %d", &pid); serr != nil {
		t.Fatalf("the orchestrator said %q (%v), want its pid", l, err)
	}
	if cap {
		wantErrno(t, "grant capcontid", writeFile(capPath(pid), "1"), nil)
	}
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatalf("releasing the orchestrator: %v", err)
	}
	checkHelper(t, p)
}

func testCapNested(t *T) {
	needCap(t)
	// a delegated orchestrator learns nothing of contids in use
	// elsewhere: EPERM, as for any value it may not set
	orchestrate(t, "400", true, "/init", "helper", "nest", "400", "401", "EPERM")
}

func testCapWithoutFlag(t *T) {
	needCap(t)
	orchestrate(t, "420", false, "/init", "helper", "child-write", "421", "EPERM")
}

func testCapWithoutContid(t *T) {
	needCap(t)
	orchestrate(t, "", true, "/init", "helper", "child-write", "430", "EPERM")
}

func testCapCannotGrant(t *T) {
	needCap(t)
	orchestrate(t, "410", true, "/init", "helper", "child-capwrite", "EPERM")
}

// testCapNotInherited: the children of a task granted capcontid do not
// have it (v1 let every descendant of a nested orchestrator set contids).
func testCapNotInherited(t *T) {
	needCap(t)
	p := start(t, "/bin/busybox", "sh", "-c", "read x; /bin/busybox sleep 1000 & echo child $!; read y")
	defer p.kill()
	wantErrno(t, "grant capcontid", writeFile(capPath(p.pid()), "1"), nil)
	if got := readCap(t, p.pid()); got != "1" {
		t.Errorf("capcontid of the grantee: %q, want 1", got)
	}
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatalf("%v", err)
	}
	l, _ := p.out.ReadString('\n')
	var child int
	if _, err := fmt.Sscanf(l, "child %d", &child); err != nil {
		t.Fatalf("no child pid in %q", l)
	}
	defer syscall.Kill(child, syscall.SIGKILL)
	if got := readCap(t, child); got != "0" {
		t.Errorf("capcontid of the grantee's child: %q, want 0 (not inherited)", got)
	}
}

// testCapBoundToUserns: a task granted capcontid in one user namespace
// that makes itself root of a new one (unshare -U -r) may not set contids
// with its capabilities there; v1 checked the task's current namespace.
func testCapBoundToUserns(t *T) {
	needCap(t)
	// The same task (busybox execs in place) unshares, forks a sleeper
	// and writes its contid; the shell reports the result.
	script := `/bin/busybox sleep 1000 & c=$!
if { echo 451 > /proc/$c/audit_containerid; } 2>/tmp/capns.err; then echo "bad the write succeeded"
else echo "ok refused: $(/bin/busybox cat /tmp/capns.err)"; fi
kill $c`
	p := stub(t, "/bin/busybox", "unshare", "-U", "-r", "/bin/busybox", "sh", "-c", script)
	defer p.kill()
	wantErrno(t, "set 450", writeContid(p.pid(), "450"), nil)
	wantErrno(t, "grant capcontid", writeFile(capPath(p.pid()), "1"), nil)
	p.release(t)
	lines := checkHelper(t, p)
	for _, l := range lines {
		if strings.HasPrefix(l, "ok refused") && strings.Contains(l, "not permitted") {
			return
		}
	}
	t.Errorf("no EPERM from the write in the new user namespace:\n%s", strings.Join(lines, "\n"))
}
