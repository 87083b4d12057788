package main

import (
	"os"
	"strings"

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

// orchestrate starts argv in a user namespace below a stub that gets
// contid (if not empty) and capcontid (if cap) first.
func orchestrate(t *T, contid string, cap bool, argv ...string) {
	p := stub(t, append([]string{"/init", "helper", "userns-run"}, argv...)...)
	defer p.kill()
	if contid != "" {
		wantErrno(t, "set "+contid, writeContid(p.pid(), contid), nil)
	}
	if cap {
		wantErrno(t, "grant capcontid", writeFile(capPath(p.pid()), "1"), nil)
	}
	p.release(t)
	checkHelper(t, p)
}

func testCapNested(t *T) {
	needCap(t)
	orchestrate(t, "400", true, "/init", "helper", "nest", "400", "401")
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
