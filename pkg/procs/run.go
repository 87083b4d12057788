package procs

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// open opens the connector socket, bound to the process-events group, and
// the eventfd that interrupts Run.
func (t *Tracker) open() error {
	conn, err := netlink.Dial(unix.NETLINK_CONNECTOR, &netlink.Config{Groups: cnIdxProc})
	if err != nil {
		return fmt.Errorf("opening the process-events connector: %w", err)
	}
	t.conn = conn
	if t.raw, err = conn.SyscallConn(); err != nil {
		return fmt.Errorf("opening the process-events connector: %w", err)
	}
	t.raw.Control(func(fd uintptr) {
		t.fd = int(fd)
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		}
	})
	if t.wakeFd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		t.wakeFd = -1
		return fmt.Errorf("making an eventfd: %w", err)
	}
	return nil
}

// watermarkEvery is how often an idle Run wakes up to say that it has
// handled everything so far (Settled).
const watermarkEvery = 20 * time.Millisecond

// Run reads process events until ctx ends or Close is called; both are a
// normal stop and return nil. Call it once at a time.
//
// It reads on an operating-system thread of its own, woken by the kernel
// directly (poll), not through the Go scheduler: a process that execs and
// exits within a millisecond is read from /proc while it can still be.
func (t *Tracker) Run(ctx context.Context) error {
	t.runMu.Lock()
	defer t.runMu.Unlock()
	if t.closed.Load() {
		return nil
	}
	// Polling needs a thread of its own; it is not unlocked, so it ends
	// with Run.
	runtime.LockOSThread()
	// The race with a short-lived process's exit is won or lost on this
	// thread: best effort, it runs ahead of ordinary work.
	unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), -10)
	var v [8]byte
	unix.Read(t.wakeFd, v[:]) // a wake-up left by an earlier Run
	stop := context.AfterFunc(ctx, t.wake)
	defer stop()
	// With moveFd -1 poll skips the entry.
	fds := []unix.PollFd{
		{Fd: int32(t.wakeFd), Events: unix.POLLIN},
		{Fd: int32(t.fd), Events: unix.POLLIN},
		{Fd: int32(t.moveFd), Events: unix.POLLIN},
	}
	for {
		// The timeout moves the watermark on when nothing happens, so that
		// events are routed without waiting for the router's delay.
		if _, err := unix.Poll(fds, int(watermarkEvery/time.Millisecond)); err != nil && err != unix.EINTR {
			return fmt.Errorf("reading process events: waiting: %w", err)
		}
		if fds[0].Revents != 0 {
			return nil
		}
		t.syncClocks()
		mark := t.now()
		if t.ids == nil {
			t.followed()
		}
		// Process events first: a write to cgroup.procs comes after the
		// writer's fork, whose event is then already applied.
		// fd is -1 without process events (Options.ContID on a kernel
		// without them).
		if t.fd >= 0 {
			if err := t.drain(); err != nil {
				return err
			}
		}
		if t.moveFd >= 0 {
			t.drainMoves()
		}
		t.watermark.Store(mark)
	}
}

// drain handles every datagram waiting on the socket.
func (t *Tracker) drain() error {
	for {
		n, err := unix.Read(t.fd, t.buf)
		switch {
		case err == nil:
			t.eachEvent(t.buf[:n], t.handle)
		case errors.Is(err, unix.EAGAIN):
			return nil
		case errors.Is(err, unix.ENOBUFS):
			t.overrun()
		case errors.Is(err, unix.EINTR):
		default:
			return fmt.Errorf("reading process events: %w", err)
		}
	}
}

// wake interrupts Run.
func (t *Tracker) wake() {
	var one = [8]byte{1}
	unix.Write(t.wakeFd, one[:])
}

// Close stops Run, unsubscribes and closes the socket. Lookup keeps
// answering from the map as it was.
func (t *Tracker) Close() error {
	var err error
	t.once.Do(func() {
		t.closed.Store(true)
		if t.wakeFd >= 0 {
			t.wake()
		}
		t.runMu.Lock()
		defer t.runMu.Unlock()
		if t.conn != nil {
			t.send(procCnMcastIgnore, 0)
			err = t.conn.Close()
		}
		if t.wakeFd >= 0 {
			unix.Close(t.wakeFd)
		}
		if t.moveFd >= 0 {
			unix.Close(t.moveFd)
		}
	})
	return err
}
