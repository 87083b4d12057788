package main

import (
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	auditNetfilterPkt = 1324
	iptables          = "/usr/sbin/xtables-legacy-multi"
)

func init() {
	tests = append(tests, struct {
		name string
		fn   func(*T)
	}{"records/netfilter-shared-netns", testNetfilter})
}

// run runs argv to completion and fails the test if it fails. iptables
// gets the flock shim: the test kernel has no file locking.
func run(t *T, argv ...string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/bin", "LD_PRELOAD=/usr/lib/noflock.so"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
}

func netns(pid int) string {
	l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	return l
}

// splitChains splits a CONTAINER_ID contid= list into its chains.
func splitChains(list string) []string {
	var chains []string
	for _, id := range strings.Split(list, ",") {
		if strings.HasPrefix(id, "^") && len(chains) > 0 {
			chains[len(chains)-1] += "," + id
			continue
		}
		chains = append(chains, id)
	}
	sort.Strings(chains)
	return chains
}

// pktEvent waits for a NETFILTER_PKT record and returns the chains on
// its CONTAINER_ID record.
func pktEvent(t *T, a *auditd, mark int) []string {
	r := want(t, a, mark, auditNetfilterPkt)
	if r.serial == "" {
		return nil
	}
	time.Sleep(50 * time.Millisecond)
	for _, x := range a.since(mark) {
		if x.serial == r.serial && x.typ == containerID {
			if got := field(x.text, "record"); got != itoa(auditNetfilterPkt) {
				t.Errorf("CONTAINER_ID names record=%s, want %d", got, auditNetfilterPkt)
			}
			return splitChains(field(x.text, "contid"))
		}
	}
	return nil
}

func testNetfilter(t *T) {
	a := needDaemon(t)
	if _, err := os.Stat(iptables); err != nil {
		t.Skipf("no %s in the initramfs (apt-get install iptables on the host)", iptables)
	}
	// Container 600 owns a new network namespace ...
	cmd := exec.Command("/bin/busybox", "sh", "-c", `read x; exec /bin/busybox sleep 1000`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	owner := startCmd(t, cmd)
	defer owner.kill()
	waitExe(t, owner.pid(), "/bin/busybox")
	m0 := a.mark()
	wantErrno(t, "set 600", writeContid(owner.pid(), "600"), nil)
	// The op=set record names the namespaces, as stat() does.
	nsPath := fmt.Sprintf("/proc/%d/ns/net", owner.pid())
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err != nil {
		t.Errorf("stat %s: %v", nsPath, err)
	}
	want(t, a, m0, containerOp, "op=set", "contid=600",
		fmt.Sprintf("ns_dev=%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev)), // as dev= in PATH
		fmt.Sprintf("ns_net=%d", st.Ino))
	owner.release(t)
	ns := itoa(owner.pid())
	run(t, "/bin/busybox", "nsenter", "-n", "-t", ns, "/bin/busybox", "ip", "link", "set", "lo", "up")
	run(t, "/bin/busybox", "nsenter", "-n", "-t", ns, iptables, "iptables", "-A", "OUTPUT", "-p", "icmp", "-j", "AUDIT", "--type", "accept")

	// ... and container 601 joins it.
	joiner := start(t, "/bin/busybox", "nsenter", "-n", "-t", ns, "/bin/busybox", "sh", "-c",
		`read x; exec /bin/busybox ping -c 1 -W 1 127.0.0.1`)
	defer joiner.kill()
	deadline := time.Now().Add(5 * time.Second)
	for netns(joiner.pid()) != netns(owner.pid()) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	wantErrno(t, "set 601", writeContid(joiner.pid(), "601"), nil)
	m := a.mark()
	joiner.release(t)
	joiner.lines()
	if got := strings.Join(pktEvent(t, a, m), " "); got != "600 601" {
		t.Errorf("packet from the shared netns: chains %q, want \"600 601\"", got)
	}

	// Once 601 has exited only 600 uses the namespace.
	m = a.mark()
	run(t, "/bin/busybox", "nsenter", "-n", "-t", ns, "/bin/busybox", "ping", "-c", "1", "-W", "1", "127.0.0.1")
	if got := strings.Join(pktEvent(t, a, m), " "); got != "600" {
		t.Errorf("after 601 left: chains %q, want \"600\"", got)
	}
}
