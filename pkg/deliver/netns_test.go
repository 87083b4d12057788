package deliver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNetnsDialerHoldsTheNamespace: a remote target's /proc/PID/ns/net is
// opened once, at registration. Once the process is gone (and its pid free
// for any other process), the copies still go to a listener in the
// container's own namespace, never to whatever the path names later.
func TestNetnsDialerHoldsTheNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	// A container: a process in a network namespace of its own, with its
	// loopback up.
	cmd := exec.Command("unshare", "-n", "sh", "-c", "ip link set lo up && echo up && exec sleep 600")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 3)
	if _, err := out.Read(buf); err != nil || string(buf) != "up\n" {
		t.Fatalf("the namespace's loopback: %q %v", buf, err)
	}
	path := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)

	// A listener inside it, as the tenant's auditd would be.
	ln := listenIn(t, path)
	defer ln.Close()
	dial, closeNS, err := netnsDialer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer closeNS()

	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s still exists after its process exited", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dialing the container's listener after its process exited: %v", err)
	}
	defer c.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	a, err := ln.Accept()
	if err != nil {
		t.Fatalf("the container's listener got no connection: %v", err)
	}
	a.Close()

	if _, _, err := netnsDialer("/etc/hostname"); err == nil || !strings.Contains(err.Error(), "is not a namespace") {
		t.Errorf("a regular file as netns: %v", err)
	}
}

// listenIn listens on 127.0.0.1 inside the network namespace at path.
func listenIn(t *testing.T, path string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread ends with the goroutine
		f, err := os.Open(path)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listening in %s: %v", path, r.err)
	}
	return r.ln
}
