package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDialer returns a dialer that opens its connections inside the network
// namespace at path (/run/netns/NAME, /proc/PID/ns/net): a container with no
// route to the host still gets its copies on its own loopback.
func netnsDialer(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			// The thread is left locked (and so discarded) if it cannot
			// be put back in the daemon's namespace.
			runtime.LockOSThread()
			c, err, restored := dialIn(ctx, path, network, addr)
			if restored {
				runtime.UnlockOSThread()
			}
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

func dialIn(ctx context.Context, path, network, addr string) (net.Conn, error, bool) {
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, fmt.Errorf("dialing in netns %s: %w", path, err), true
	}
	defer self.Close()
	target, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dialing in netns: %w", err), true
	}
	defer target.Close()
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
