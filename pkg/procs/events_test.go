package procs

import (
	"encoding/binary"
	"testing"
)

// cnEvent builds a connector message (cn_msg + proc_event) as the kernel
// sends it: what, cpu, timestamp, then the event's u32 fields.
func cnEvent(what, seq, ack uint32, fields ...uint32) []byte {
	data := make([]byte, procEventHdrLen+len(fields)*4)
	ne := binary.NativeEndian
	ne.PutUint32(data[0:], what)
	ne.PutUint32(data[4:], 1)               // cpu
	ne.PutUint64(data[8:], 123456789012345) // timestamp_ns
	for i, f := range fields {
		ne.PutUint32(data[procEventHdrLen+4*i:], f)
	}
	b := make([]byte, cnMsgLen, cnMsgLen+len(data))
	ne.PutUint32(b[0:], cnIdxProc)
	ne.PutUint32(b[4:], cnValProc)
	ne.PutUint32(b[8:], seq)
	ne.PutUint32(b[12:], ack)
	ne.PutUint16(b[16:], uint16(len(data)))
	return append(b, data...)
}

func TestParseProcEvent(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want procEvent
	}{
		{"fork", cnEvent(procEventFork, 7, 0, 100, 100, 201, 201), procEvent{What: procEventFork, Seq: 7, Parent: 100, PID: 201, TGID: 201}},
		{"thread", cnEvent(procEventFork, 7, 0, 100, 100, 202, 201), procEvent{What: procEventFork, Seq: 7, Parent: 100, PID: 202, TGID: 201}},
		{"exec", cnEvent(procEventExec, 8, 0, 201, 201), procEvent{What: procEventExec, Seq: 8, PID: 201, TGID: 201}},
		{"exit", cnEvent(procEventExit, 9, 0, 201, 201, 0, 17, 100, 100), procEvent{What: procEventExit, Seq: 9, PID: 201, TGID: 201, Parent: 100}},
		{"old exit", cnEvent(procEventExit, 9, 0, 201, 201, 0, 17), procEvent{What: procEventExit, Seq: 9, PID: 201, TGID: 201}},
		{"answer", cnEvent(procEventNone, 42, 1, 1), procEvent{What: procEventNone, Seq: 42, Ack: 1, Err: 1}},
		{"comm", cnEvent(0x200, 3, 0, 5, 5, 0x41414141, 0, 0, 0), procEvent{What: 0x200, Seq: 3, PID: 5, TGID: 5}},
		// The kernel sends the whole union (40 bytes) for every event.
		{"padded exec", cnEvent(procEventExec, 8, 0, 201, 201, 0, 0, 0, 0, 0, 0, 0, 0), procEvent{What: procEventExec, Seq: 8, PID: 201, TGID: 201}},
	}
	for _, tt := range tests {
		tt.want.Time = 123456789012345
		got, err := parseProcEvent(tt.b)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func TestParseProcEventErrors(t *testing.T) {
	other := cnEvent(procEventExec, 1, 0, 1, 1)
	binary.NativeEndian.PutUint32(other[0:], 4) // CN_IDX_CIFS
	long := cnEvent(procEventExec, 1, 0, 1, 1)
	binary.NativeEndian.PutUint16(long[16:], 200)
	tests := map[string][]byte{
		"empty":         nil,
		"short cn_msg":  make([]byte, 19),
		"other idx":     other,
		"len past end":  long,
		"no event":      cnEvent(procEventExec, 1, 0)[:cnMsgLen+8],
		"short fork":    cnEvent(procEventFork, 1, 0, 1, 1, 2),
		"short exec":    cnEvent(procEventExec, 1, 0, 1),
		"short exit":    cnEvent(procEventExit, 1, 0, 1),
		"header only":   cnEvent(procEventExec, 1, 0),
		"truncated len": cnEvent(procEventFork, 1, 0, 1, 1, 2, 2)[:cnMsgLen+procEventHdrLen+4],
	}
	for name, b := range tests {
		if name == "truncated len" {
			binary.NativeEndian.PutUint16(b[16:], uint16(len(b)-cnMsgLen))
		}
		if ev, err := parseProcEvent(b); err == nil {
			t.Errorf("%s: got %+v, want an error", name, ev)
		}
	}
}

func TestMcastRequest(t *testing.T) {
	ne := binary.NativeEndian
	b := mcastRequest(procCnMcastListen, 5, 0)
	if len(b) != cnMsgLen+4 || ne.Uint32(b[0:]) != 1 || ne.Uint32(b[4:]) != 1 || ne.Uint32(b[8:]) != 5 ||
		ne.Uint32(b[12:]) != 5 || ne.Uint16(b[16:]) != 4 || ne.Uint32(b[20:]) != 1 {
		t.Errorf("listen request: % x", b)
	}
	b = mcastRequest(procCnMcastIgnore, 6, procEventFork|procEventExit)
	if len(b) != cnMsgLen+8 || ne.Uint16(b[16:]) != 8 || ne.Uint32(b[20:]) != 2 || ne.Uint32(b[24:]) != 0x80000001 {
		t.Errorf("filtered ignore request: % x", b)
	}
}

func TestProcConstantsDistinct(t *testing.T) {
	events := []uint32{procEventNone, procEventFork, procEventExec, procEventExit}
	seen := map[uint32]bool{}
	for _, e := range events {
		if seen[e] {
			t.Errorf("event value %#x repeats", e)
		}
		seen[e] = true
	}
	if procCnMcastListen == procCnMcastIgnore {
		t.Error("listen and ignore are the same op")
	}
}

func FuzzParseProcEvent(f *testing.F) {
	f.Add(cnEvent(procEventFork, 7, 0, 100, 100, 201, 201))
	f.Add(cnEvent(procEventExec, 8, 0, 201, 201))
	f.Add(cnEvent(procEventExit, 9, 0, 201, 201, 0, 17, 100, 100))
	f.Add(cnEvent(procEventNone, 42, 1, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseProcEvent(b)
	})
}
