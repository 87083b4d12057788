package deliver

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDialer opens the network namespace at path (/run/netns/NAME,
// /proc/PID/ns/net) once and returns a dialer that opens its connections
// inside it: a container with no route to the host still gets its copies
// on its own loopback. The namespace is held by its descriptor until
// close: a /proc/PID path whose process is gone, and whose pid another
// process then has, never redirects the connections to that process's
// namespace.
func netnsDialer(path string) (dial func(ctx context.Context, network, addr string) (net.Conn, error), close func() error, err error) {
	target, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the network namespace: %w", err)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(target.Fd()), &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		target.Close()
		return nil, nil, fmt.Errorf("%s is not a namespace (nsfs) file", path)
	}
	dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			// The thread is left locked (and so discarded) if it cannot
			// be put back in the daemon's namespace.
			runtime.LockOSThread()
			c, err, restored := dialIn(ctx, target, path, network, addr)
			if restored {
				runtime.UnlockOSThread()
			}
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
	return dial, target.Close, nil
}

func dialIn(ctx context.Context, target *os.File, path, network, addr string) (net.Conn, error, bool) {
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, fmt.Errorf("dialing in netns %s: %w", path, err), true
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("dialing in netns %s: entering it: %w", path, err), true
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	restored := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil
	if err != nil {
		return nil, fmt.Errorf("dialing %s in netns %s: %w", addr, path, err), restored
	}
	return c, nil, restored
}
