package procs

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The kernel's process-events connector (linux/connector.h, linux/cn_proc.h).
// The values are the kernel's; each is written out so none repeats by
// accident.
const (
	cnIdxProc = 0x1 // CN_IDX_PROC, also the netlink multicast group
	cnValProc = 0x1 // CN_VAL_PROC

	procCnMcastListen = 1 // PROC_CN_MCAST_LISTEN
	procCnMcastIgnore = 2 // PROC_CN_MCAST_IGNORE

	procEventNone = 0x00000000 // PROC_EVENT_NONE: the answer to a listen request
	procEventFork = 0x00000001 // PROC_EVENT_FORK
	procEventExec = 0x00000002 // PROC_EVENT_EXEC
	procEventExit = 0x80000000 // PROC_EVENT_EXIT
)

// Sizes of the connector's structures.
const (
	cnMsgLen        = 20 // struct cn_msg: cb_id{idx, val}, seq, ack, len u16, flags u16
	procEventHdrLen = 16 // struct proc_event: what, cpu, timestamp_ns (aligned 8)
)

// procEvent is the part of one struct proc_event the tracker uses. PIDs
// are as seen from the initial pid namespace, like the pid= of audit
// records.
type procEvent struct {
	What     uint32
	Time     uint64 // timestamp_ns: CLOCK_MONOTONIC when the kernel sent it
	Seq, Ack uint32 // of the cn_msg; an answer carries the request's ack+1 (its seq is the kernel's)
	Err      uint32 // of an answer (PROC_EVENT_NONE)
	PID      uint32 // thread ID: the child's on fork, the task's on exec and exit
	TGID     uint32 // process ID: the child's on fork, the task's on exec and exit
	Parent   uint32 // the parent's process ID on fork and exit (0 when the kernel does not say)
}

var errNotProcEvent = errors.New("not a process event")

// parseProcEvent decodes the payload of one netlink message from the
// connector: a cn_msg followed by a proc_event.
func parseProcEvent(b []byte) (procEvent, error) {
	var ev procEvent
	if len(b) < cnMsgLen {
		return ev, fmt.Errorf("connector message of %d bytes, want at least %d", len(b), cnMsgLen)
	}
	ne := binary.NativeEndian
	if ne.Uint32(b[0:]) != cnIdxProc || ne.Uint32(b[4:]) != cnValProc {
		return ev, errNotProcEvent
	}
	ev.Seq, ev.Ack = ne.Uint32(b[8:]), ne.Uint32(b[12:])
	n := int(ne.Uint16(b[16:]))
	data := b[cnMsgLen:]
	if n > len(data) {
		return ev, fmt.Errorf("connector message says %d bytes of data, has %d", n, len(data))
	}
	data = data[:n]
	if len(data) < procEventHdrLen+4 {
		return ev, fmt.Errorf("process event of %d bytes, want at least %d", len(data), procEventHdrLen+4)
	}
	ev.What = ne.Uint32(data[0:])
	ev.Time = ne.Uint64(data[8:])
	d := data[procEventHdrLen:]
	u32 := func(off int) uint32 {
		if off+4 > len(d) {
			return 0
		}
		return ne.Uint32(d[off:])
	}
	switch ev.What {
	case procEventNone:
		ev.Err = u32(0)
	case procEventFork:
		// parent_pid, parent_tgid, child_pid, child_tgid
		if len(d) < 16 {
			return ev, fmt.Errorf("fork event of %d bytes, want 16", len(d))
		}
		ev.Parent, ev.PID, ev.TGID = u32(4), u32(8), u32(12)
	case procEventExec:
		// process_pid, process_tgid
		if len(d) < 8 {
			return ev, fmt.Errorf("exec event of %d bytes, want 8", len(d))
		}
		ev.PID, ev.TGID = u32(0), u32(4)
	case procEventExit:
		// process_pid, process_tgid, exit_code, exit_signal, parent_pid, parent_tgid
		if len(d) < 8 {
			return ev, fmt.Errorf("exit event of %d bytes, want at least 8", len(d))
		}
		ev.PID, ev.TGID, ev.Parent = u32(0), u32(4), u32(20)
	default:
		ev.PID, ev.TGID = u32(0), u32(4)
	}
	return ev, nil
}

// mcastRequest builds the cn_msg that asks the kernel to start (listen) or
// stop (ignore) sending process events to this socket. With events zero it
// is the 4-byte request every kernel understands; otherwise it is the
// 8-byte struct proc_input {mcast_op, event_type} of Linux 6.6 and later,
// which limits the events sent to this socket to those in the mask (older
// kernels ignore it without an answer). The request's ack field is seq too:
// the kernel answers with ack+1 and a seq of its own.
func mcastRequest(op, seq, events uint32) []byte {
	n := 4
	if events != 0 {
		n = 8
	}
	b := make([]byte, cnMsgLen+n)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], cnIdxProc)
	ne.PutUint32(b[4:], cnValProc)
	ne.PutUint32(b[8:], seq)
	ne.PutUint32(b[12:], seq)
	ne.PutUint16(b[16:], uint16(n))
	ne.PutUint32(b[cnMsgLen:], op)
	if events != 0 {
		ne.PutUint32(b[cnMsgLen+4:], events)
	}
	return b
}
