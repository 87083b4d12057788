package remote

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// lowat sets the socket's SO_RCVLOWAT before the reader blocks, so that
// the kernel wakes it once the replies it waits for have arrived rather
// than for each 16-byte ack: auditd writes one ack per frame, and a wake-up
// and a read per ack cost more CPU than the frame itself. Every frame in
// flight gets a reply of at least HeaderSize bytes, so asking for that
// many bytes per reply due never waits for bytes that will not come; a
// closed or failed connection wakes the reader whatever the mark.
type lowat struct {
	rc  syscall.RawConn // nil when the connection is not a socket
	cur int
}

func newLowat(c net.Conn) *lowat {
	l := &lowat{cur: 1}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			l.rc = rc
		}
	}
	return l
}

// set asks to be woken when n bytes are waiting (at least 1). It is a
// hint: when the socket refuses it, reads wake as before.
func (l *lowat) set(n int) {
	n = max(n, 1)
	if l.rc == nil || n == l.cur {
		return
	}
	l.rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, n) == nil {
			l.cur = n
		}
	})
}
