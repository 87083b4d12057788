package source

import (
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultBatch is how many messages Receive asks of one system call
// unless SetBatch says otherwise.
const DefaultBatch = 64

// DefaultGather is how long Receive waits after a read that emptied the
// socket before it reads again, unless SetGather says otherwise. A reader
// faster than the kernel otherwise wakes once per record, and the
// wake-ups, not the records, take most of its CPU. 1 ms of records at
// the kernel's full rate here (about 300k records/s) is about 300
// messages, far below what the socket buffer holds.
const DefaultGather = time.Millisecond

// batch is the buffers of one recvmmsg(2) call: a message, its length and
// its sender's address per slot. Receive hands the messages out from next
// to n before it reads again.
type batch struct {
	slab    []byte // len(hdrs) buffers of maxMessage bytes
	iov     []unix.Iovec
	hdrs    []unix.Mmsghdr
	from    []unix.RawSockaddrNetlink
	n, next int
}

func (b *batch) init(size int) {
	b.slab = make([]byte, size*maxMessage)
	b.iov = make([]unix.Iovec, size)
	b.hdrs = make([]unix.Mmsghdr, size)
	b.from = make([]unix.RawSockaddrNetlink, size)
	for i := range size {
		b.iov[i].Base = &b.slab[i*maxMessage]
		b.iov[i].SetLen(maxMessage)
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.from[i]))
		h.Iov = &b.iov[i]
		h.Iovlen = 1
	}
	b.n, b.next = 0, 0
}

// msg is slot i's buffer.
func (b *batch) msg(i int) []byte { return b.slab[i*maxMessage : (i+1)*maxMessage] }

// read fills the batch with what the socket holds, up to its size, in one
// system call: recvmmsg, or recvfrom for a batch of one. It returns
// EAGAIN when the socket is empty.
func (b *batch) read(fd uintptr) error {
	b.n, b.next = 0, 0
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrNetlink
		b.hdrs[i].Len = 0
	}
	if len(b.hdrs) == 1 {
		h := &b.hdrs[0]
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b.slab[0])), maxMessage, 0,
			uintptr(unsafe.Pointer(&b.from[0])), uintptr(unsafe.Pointer(&h.Hdr.Namelen)))
		if errno != 0 {
			return errno
		}
		h.Len, b.n = uint32(n), 1
		return nil
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	b.n = int(n)
	return nil
}

// SetGather sets how long Receive lets records gather after a read that
// emptied the socket; 0 reads again at once and so wakes for every
// record. Records wait at most that long more before they are returned.
// Call it before the first Receive.
func (k *Kernel) SetGather(d time.Duration) error {
	if d < 0 || d > 100*time.Millisecond {
		return fmt.Errorf("gathering records for %v: want 0 to 100ms", d)
	}
	k.gather = d
	return nil
}

// SetBatch sets how many messages one system call of Receive reads: 1
// reads one message per recvfrom(2) (as auditd does), more use
// recvmmsg(2). Each slot holds one message of up to 9 KiB. Call it
// before the first Receive.
func (k *Kernel) SetBatch(n int) error {
	if n < 1 || n > 1024 {
		return fmt.Errorf("batch of %d messages: want 1 to 1024", n)
	}
	if k.b.next < k.b.n {
		return fmt.Errorf("batch size changed with %d messages unread", k.b.n-k.b.next)
	}
	k.b.init(n)
	return nil
}
