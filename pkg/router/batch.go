package router

import (
	"encoding/binary"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// batch is records on their way to Run, one after another in buf, each a
// header (what parsing found) and its copy line (appendRecord). Once Run
// has it, the records stay there, and the assembler's events point into
// it, until the last of them is routed.
type batch struct {
	buf  []byte
	n    int
	refs int // Run's goroutine only: records held, +1 while being added
}

// A record's header in a batch. The goroutine that makes the line parses
// it while it is in its cache, so that the router does not read the line
// until it copies it.
const (
	hType    = 0  // uint16
	hLen     = 2  // uint32: the line's length, newline included
	hFlags   = 6  // byte
	hData    = 7  // uint16: where the payload starts in the line
	hText    = 9  // uint16: where the text after "audit(…): " starts
	hMsec    = 11 // uint16
	hPID     = 13 // uint32: a SYSCALL record's pid=, when flagPID
	hSec     = 17 // uint64
	hSerial  = 25 // uint64
	hdrLen   = 33
	flagOK   = 1 // the header parsed
	flagPID  = 2
	maxShort = 1<<16 - 1
)

// appendRecord appends one record, header and copy line, to buf, and
// returns buf and the line (newline included).
func appendRecord(buf []byte, node string, typ uint16, data []byte) ([]byte, []byte) {
	at := len(buf)
	buf = append(buf, make([]byte, hdrLen)...)
	buf = hostlog.AppendLine(buf, node, typ, data)
	line := buf[at+hdrLen:]
	h := buf[at : at+hdrLen]
	binary.LittleEndian.PutUint16(h[hType:], typ)
	binary.LittleEndian.PutUint32(h[hLen:], uint32(len(line)))
	// The payload is the line's end, as AppendLine keeps its length.
	start := len(line) - 1 - len(data)
	var rec record.Record
	if start > maxShort || record.Parse(&rec, typ, line[start:len(line)-1]) != nil {
		return buf, line
	}
	flags := byte(flagOK)
	text := len(line) - 1 - len(rec.Text)
	if text > maxShort {
		return buf, line
	}
	if typ == record.TypeSyscall {
		if pid, ok := syscallPID(rec.Text); ok && pid <= 1<<32-1 {
			flags |= flagPID
			binary.LittleEndian.PutUint32(h[hPID:], uint32(pid))
		}
	}
	h[hFlags] = flags
	binary.LittleEndian.PutUint16(h[hData:], uint16(start))
	binary.LittleEndian.PutUint16(h[hText:], uint16(text))
	binary.LittleEndian.PutUint16(h[hMsec:], uint16(rec.Msec))
	binary.LittleEndian.PutUint64(h[hSec:], rec.Sec)
	binary.LittleEndian.PutUint64(h[hSerial:], rec.Serial)
	return buf, line
}

// nextRecord reads the record at the start of p into rec, without reading
// its line. It returns the line (newline included), the pid of a SYSCALL
// record (-1: none), whether the record parsed, and the rest of p.
func nextRecord(rec *record.Record, p []byte) (line []byte, pid int64, ok bool, rest []byte) {
	h := p[:hdrLen]
	n := int(binary.LittleEndian.Uint32(h[hLen:]))
	line, rest = p[hdrLen:hdrLen+n], p[hdrLen+n:]
	typ := binary.LittleEndian.Uint16(h[hType:])
	flags := h[hFlags]
	if flags&flagOK == 0 {
		*rec = record.Record{Type: typ}
		return line, -1, false, rest
	}
	end := n - 1
	*rec = record.Record{
		Type:   typ,
		Sec:    binary.LittleEndian.Uint64(h[hSec:]),
		Msec:   uint32(binary.LittleEndian.Uint16(h[hMsec:])),
		Serial: binary.LittleEndian.Uint64(h[hSerial:]),
		Data:   line[binary.LittleEndian.Uint16(h[hData:]):end],
		Text:   line[binary.LittleEndian.Uint16(h[hText:]):end],
	}
	pid = -1
	if flags&flagPID != 0 {
		pid = int64(binary.LittleEndian.Uint32(h[hPID:]))
	}
	return line, pid, true, rest
}

// Lines gathers records for SubmitLines, so that a receiver hands them to
// the router a group at a time. It belongs to one goroutine.
type Lines struct {
	node string
	buf  []byte // laid out as a batch's
	n    int
}

// NewLines returns an empty group for r.
func (r *Router) NewLines() *Lines { return &Lines{node: r.opt.Node} }

// Append adds one record and returns its copy line,
// hostlog.AppendLine(dst, Options.Node, typ, data), newline included, for
// the caller to use too (in the host log): it is valid until g is
// submitted.
func (g *Lines) Append(typ uint16, data []byte) []byte {
	var line []byte
	g.buf, line = appendRecord(g.buf, g.node, typ, data)
	g.n++
	return line
}

// Len returns the number of records in g.
func (g *Lines) Len() int { return g.n }
