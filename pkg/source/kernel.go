package source

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Netlink message types of the audit protocol used here.
const (
	auditGet = 1000
	auditSet = 1001

	statusPID = 0x4 // AUDIT_STATUS_PID
)

// maxMessage bounds one kernel audit message: header plus the kernel's
// largest payload (MAX_AUDIT_MESSAGE_LENGTH 8970), with room to spare.
const maxMessage = 16 + 8970 + 64

// readBuffer is the receive buffer asked of the kernel (SO_RCVBUFFORCE):
// room for some tens of thousands of records while the reader is not
// scheduled, on top of the kernel's own backlog.
const readBuffer = 32 << 20

// Kernel is the receiving socket of the registered audit daemon. Receive is
// for one goroutine; Close may be called from any.
type Kernel struct {
	conn     *netlink.Conn
	raw      syscall.RawConn
	buf      []byte
	mu       sync.Mutex   // guards pending
	pending  [][]byte     // records read while waiting for the registration ack
	npending atomic.Int32 // len(pending), read without the lock
	overruns atomic.Uint64
	foreign  atomic.Uint64 // messages dropped: not sent by the kernel
	closed   chan struct{}
	// from and fromLen receive each message's source address; fields so
	// that a read allocates nothing.
	from    unix.RawSockaddrNetlink
	fromLen uint32
	once    sync.Once

	// Receive's read, made once so that a call allocates nothing.
	readFn func(fd uintptr) bool
	idle   func()
	idled  bool
	rerr   error
	b      batch // the messages of Receive's last read
	// gather is how long Receive lets records gather after a read that
	// emptied the socket (SetGather).
	gather time.Duration
}

// OpenKernel opens an audit netlink socket for receiving records. It does not
// register; call Register. Needs CAP_AUDIT_CONTROL to register.
func OpenKernel() (*Kernel, error) {
	conn, err := netlink.Dial(unix.NETLINK_AUDIT, nil)
	if err != nil {
		return nil, fmt.Errorf("opening audit netlink socket: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("opening audit netlink socket: %w", err)
	}
	raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, readBuffer) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, readBuffer)
		}
	})
	k := &Kernel{conn: conn, raw: raw, buf: make([]byte, maxMessage), closed: make(chan struct{})}
	k.b.init(DefaultBatch)
	k.gather = DefaultGather
	k.readFn = k.readNext
	return k, nil
}

// Register makes this socket the kernel's audit daemon (AUDIT_SET pid). It
// fails with an error wrapping syscall.EEXIST when another live daemon is
// registered; the kernel itself checks whether a registered daemon is still
// alive and takes over a stale registration.
func (k *Kernel) Register() error {
	return k.setPID(uint32(os.Getpid()))
}

// Unregister sets the kernel's audit pid back to 0.
func (k *Kernel) Unregister() error {
	return k.setPID(0)
}

func (k *Kernel) setPID(pid uint32) error {
	var st [44]byte
	binary.NativeEndian.PutUint32(st[0:], statusPID)
	binary.NativeEndian.PutUint32(st[12:], pid)
	var seqs []uint32 // of the requests sent
	send := func() error {
		req, err := k.conn.Send(netlink.Message{
			Header: netlink.Header{Type: auditSet, Flags: netlink.Request | netlink.Acknowledge},
			Data:   st[:],
		})
		if err != nil {
			return fmt.Errorf("setting audit pid: %w", err)
		}
		seqs = append(seqs, req.Header.Sequence)
		return nil
	}
	if err := send(); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		wait := time.Until(deadline)
		if pid == 0 {
			wait = min(wait, 20*time.Millisecond)
		}
		typ, data, err := k.read(wait)
		switch {
		case errors.Is(err, unix.ENOBUFS):
			k.overruns.Add(1)
			continue
		case pid == 0 && errors.Is(err, os.ErrDeadlineExceeded):
			// The socket is empty and no answer came. Records overflowed
			// its buffer (the daemon is unregistering under load): the
			// kernel then drops every message to it, its answer too, until
			// it has been read empty. Setting pid 0 again is harmless; ask
			// again now that the answer can arrive.
			if err := send(); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("setting audit pid: waiting for the kernel's answer: %w", err)
		}
		if typ != unix.NLMSG_ERROR {
			k.mu.Lock()
			k.pending = append(k.pending, append([]byte{byte(typ), byte(typ >> 8)}, data...))
			k.npending.Store(int32(len(k.pending)))
			k.mu.Unlock()
			continue
		}
		if len(data) < 20 || !slices.Contains(seqs, binary.NativeEndian.Uint32(data[12:])) {
			continue
		}
		if errno := int32(binary.NativeEndian.Uint32(data[0:])); errno != 0 {
			return fmt.Errorf("setting audit pid: %w", syscall.Errno(-errno))
		}
		return nil
	}
	return errors.New("setting audit pid: no answer from the kernel in 5s")
}

// Overruns counts the times records overflowed the socket's buffer while
// Register or Unregister waited for the kernel's answer: records the
// kernel dropped, that Receive did not report.
func (k *Kernel) Overruns() uint64 { return k.overruns.Load() }

// read reads one netlink message, waiting at most d (0 = no limit). The
// kernel puts the payload length rather than the message length in the
// header of audit records, so the length field is not trusted: a message is
// one datagram.
func (k *Kernel) read(d time.Duration) (uint16, []byte, error) {
	if d > 0 {
		k.conn.SetReadDeadline(time.Now().Add(d))
		defer k.conn.SetReadDeadline(time.Time{})
	}
	for {
		var n int
		var rerr error
		err := k.raw.Read(func(fd uintptr) bool {
			n, rerr = k.recv(fd)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return 0, nil, err
		}
		if !k.fromKernel() {
			continue
		}
		if n < unix.NLMSG_HDRLEN {
			return 0, nil, fmt.Errorf("short netlink message: %d bytes", n)
		}
		typ := binary.NativeEndian.Uint16(k.buf[4:])
		return typ, k.buf[unix.NLMSG_HDRLEN:n], nil
	}
}

// recv reads one datagram into k.buf and its source address into k.from.
func (k *Kernel) recv(fd uintptr) (int, error) {
	k.fromLen = unix.SizeofSockaddrNetlink
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&k.buf[0])), uintptr(len(k.buf)), 0,
		uintptr(unsafe.Pointer(&k.from)), uintptr(unsafe.Pointer(&k.fromLen)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// fromKernel reports whether the message just read came from the kernel
// (netlink port 0), as auditd checks. Another process with CAP_NET_ADMIN
// can send to this socket's port; its messages are dropped and counted,
// never taken for records or replies.
func (k *Kernel) fromKernel() bool { return k.isKernel(&k.from, k.fromLen) }

func (k *Kernel) isKernel(from *unix.RawSockaddrNetlink, fromLen uint32) bool {
	if fromLen >= unix.SizeofSockaddrNetlink && from.Family == unix.AF_NETLINK && from.Pid == 0 {
		return true
	}
	k.foreign.Add(1)
	return false
}

// Foreign counts the messages dropped because they did not come from the
// kernel (a sender port other than 0).
func (k *Kernel) Foreign() uint64 { return k.foreign.Load() }

// ErrClosed is returned by Receive after Close.
var ErrClosed = errors.New("kernel source closed")

// Receive returns the next audit record: its type and payload. The payload
// is valid until the next call. Control replies (NLMSG_ERROR, NLMSG_DONE)
// are skipped. When no record is waiting, idle is called once before
// Receive blocks, so the caller can flush. ENOBUFS (the socket buffer
// overflowed and the kernel dropped messages) is returned as an error
// wrapping unix.ENOBUFS; the caller counts it and goes on.
//
// One system call reads up to the batch size of messages (SetBatch);
// Receive hands them out one by one before it reads again.
func (k *Kernel) Receive(idle func()) (uint16, []byte, error) {
	if p := k.popPending(); p != nil {
		return uint16(p[0]) | uint16(p[1])<<8, p[2:], nil
	}
	for {
		if typ, data, ok := k.next(); ok {
			return typ, data, nil
		}
		if k.gather > 0 && k.b.n < len(k.b.hdrs) {
			// The last read emptied the socket: rather than wake for
			// each record as it comes, let some gather.
			time.Sleep(k.gather)
		}
		k.idle, k.idled = idle, false
		err := k.raw.Read(k.readFn)
		k.idle = nil
		if err == nil {
			err = k.rerr
		}
		if err != nil {
			select {
			case <-k.closed:
				return 0, nil, ErrClosed
			default:
			}
			return 0, nil, fmt.Errorf("receiving audit records: %w", err)
		}
	}
}

// next hands out the next record of the last read, skipping messages not
// from the kernel, short ones and control replies.
func (k *Kernel) next() (uint16, []byte, bool) {
	for k.b.next < k.b.n {
		i := k.b.next
		k.b.next++
		h := &k.b.hdrs[i]
		if !k.isKernel(&k.b.from[i], h.Hdr.Namelen) || h.Len < unix.NLMSG_HDRLEN {
			continue
		}
		m := k.b.msg(i)[:min(int(h.Len), maxMessage)]
		typ := binary.NativeEndian.Uint16(m[4:])
		if typ == unix.NLMSG_ERROR || typ == unix.NLMSG_DONE || typ == unix.NLMSG_NOOP {
			continue
		}
		return typ, m[unix.NLMSG_HDRLEN:], true
	}
	return 0, nil, false
}

// readNext is Receive's read of one batch, for RawConn.Read: when the
// socket is empty it calls idle once and tries again, then lets the poller
// wait.
func (k *Kernel) readNext(fd uintptr) bool {
	k.rerr = k.b.read(fd)
	if k.rerr == unix.EAGAIN && !k.idled && k.idle != nil {
		k.idled = true
		k.idle()
		k.rerr = k.b.read(fd)
	}
	return k.rerr != unix.EAGAIN
}

func (k *Kernel) popPending() []byte {
	if k.npending.Load() == 0 {
		return nil // the usual case, spared the lock
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.pending) == 0 {
		return nil
	}
	p := k.pending[0]
	k.pending = k.pending[1:]
	k.npending.Store(int32(len(k.pending)))
	return p
}

// Close closes the socket, interrupting a blocked Receive. It does not
// unregister; call Unregister first.
func (k *Kernel) Close() error {
	var err error
	k.once.Do(func() {
		close(k.closed)
		err = k.conn.Close()
	})
	return err
}

// Interrupt makes a blocked or later Receive return (with an error matching
// os.ErrDeadlineExceeded) without closing the socket, so the daemon can
// still unregister and drain it.
func (k *Kernel) Interrupt() {
	k.conn.SetReadDeadline(time.Unix(1, 0))
}

// Drain returns records still waiting on the socket, without blocking for
// more than a moment; ok is false when none is left. Use it after
// Unregister to keep every record the kernel sent.
func (k *Kernel) Drain() (typ uint16, data []byte, ok bool) {
	if p := k.popPending(); p != nil {
		return uint16(p[0]) | uint16(p[1])<<8, p[2:], true
	}
	if typ, data, ok := k.next(); ok {
		return typ, data, true // read by Receive before it was interrupted
	}
	for {
		typ, data, err := k.read(20 * time.Millisecond)
		if err != nil {
			return 0, nil, false
		}
		if typ == unix.NLMSG_ERROR || typ == unix.NLMSG_DONE || typ == unix.NLMSG_NOOP {
			continue
		}
		return typ, data, true
	}
}
