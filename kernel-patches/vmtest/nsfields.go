package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

func init() {
	tests = append(tests, struct {
		name string
		fn   func(*T)
	}{"contid/ns-fields", testNsFields})
}

// nsTypes are the namespace types an op=set record may name, as
// /proc/PID/ns calls them.
var nsTypes = []string{"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"}

// testNsFields checks the ns_* fields of op=set records (patch 8) on
// successful and failed writes: one per namespace type the kernel has,
// with the inode stat() of /proc/PID/ns/TYPE shows, none for a type it
// lacks. On a kernel without CGROUPS, SYSVIPC, POSIX_MQUEUE and TIME_NS
// (config-nons, make kernel-check) the target's nsproxy has NULL
// cgroup, ipc and time namespaces: v1 dereferenced them and oopsed on the
// first logged write, failed or not. It prints which types are absent,
// for check-series.sh to check that the guest was such a kernel.
func testNsFields(t *T) {
	a := needDaemon(t)
	p := sleeper(t)
	defer p.kill()
	waitExe(t, p.pid(), "/bin/busybox")
	pid := itoa(p.pid())

	var st unix.Stat_t
	parts := []string{}
	var present, absent []string
	for _, typ := range nsTypes {
		path := fmt.Sprintf("/proc/%d/ns/%s", p.pid(), typ)
		err := unix.Stat(path, &st)
		switch {
		case err == nil:
			present = append(present, typ)
			parts = append(parts, fmt.Sprintf("ns_%s=%d", typ, st.Ino))
			dev := fmt.Sprintf("ns_dev=%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev)) // as dev= in PATH
			if len(present) == 1 {
				parts = append(parts, dev)
			}
		case errors.Is(err, unix.ENOENT):
			absent = append(absent, typ)
		default:
			t.Fatalf("stat %s: %v", path, err)
		}
	}
	fmt.Printf("INFO contid/ns-fields: namespace types absent: [%s], present: [%s]\n",
		strings.Join(absent, " "), strings.Join(present, " "))

	// check waits for the op=set record of this attempt and checks that
	// it names exactly the namespaces the task has.
	check := func(what string, m int, recParts ...string) {
		r := want(t, a, m, containerOp, append(append([]string{"op=set", "opid=" + pid}, recParts...), parts...)...)
		if r.serial == "" {
			return
		}
		for _, typ := range absent {
			if v := field(r.text, "ns_"+typ); v != "" {
				t.Errorf("%s: the record names ns_%s=%s, a type this kernel lacks: %s", what, typ, v, r.text)
			}
		}
	}

	// A failed write as root (parse error after the permission check).
	m := a.mark()
	wantErrno(t, "write garbage", writeContid(p.pid(), "abc"), unix.EINVAL)
	check("garbage", m, "contid=-1", "old-contid=-1", "res=0")
	// A set, then a failed second set.
	m = a.mark()
	wantErrno(t, "set 720", writeContid(p.pid(), "720"), nil)
	check("set 720", m, "contid=720", "old-contid=-1", "res=1")
	m = a.mark()
	wantErrno(t, "set 721", writeContid(p.pid(), "721"), unix.EEXIST)
	check("set 721", m, "contid=721", "old-contid=720", "res=0")
	// An unprivileged writer fails before anything is logged.
	h := startAs(t, 1000, "/init", "helper", "child-write", "722", "EPERM")
	checkHelper(t, h)
	// The kernel is still whole: the task's contid reads back.
	wantContid(t, p.pid(), "720")
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Errorf("after the writes: %v", err)
	}
}
