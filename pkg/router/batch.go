package router

import (
	"encoding/binary"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// batch is records on their way to Run. Once Run has it, the records stay
// there, and the assembler's events point into it, until the last of them
// is routed.
type batch struct {
	records
	refs int // Run's goroutine only: records held, +1 while being added
}

// records is records as a batch holds them: a header for each, one after
// another in hdr, and their copy lines, one after another in lines. The
// goroutine that makes a line parses it while it is in its cache and puts
// what it found in the header, so that the router reads the line only when
// it copies it; the headers, apart from the lines, are read in one sweep.
type records struct {
	hdr   []byte
	lines []byte
	n     int
}

// A record's header.
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

// append adds one record and returns its copy line (newline included).
func (rs *records) append(node string, typ uint16, data []byte) []byte {
	at := len(rs.lines)
	rs.lines = hostlog.AppendLine(rs.lines, node, typ, data)
	line := rs.lines[at:]
	rs.hdr = append(rs.hdr, make([]byte, hdrLen)...)
	h := rs.hdr[len(rs.hdr)-hdrLen:]
	rs.n++
	binary.LittleEndian.PutUint16(h[hType:], typ)
	binary.LittleEndian.PutUint32(h[hLen:], uint32(len(line)))
	// The payload is the line's end, as AppendLine keeps its length.
	start := len(line) - 1 - len(data)
	var rec record.Record
	if start > maxShort || record.Parse(&rec, typ, line[start:len(line)-1]) != nil {
		return line
	}
	flags := byte(flagOK)
	text := len(line) - 1 - len(rec.Text)
	if text > maxShort {
		return line
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
	return line
}

// appendAll adds o's records.
func (rs *records) appendAll(o *records) {
	rs.hdr = append(rs.hdr, o.hdr...)
	rs.lines = append(rs.lines, o.lines...)
	rs.n += o.n
}

func (rs *records) reset() { rs.hdr, rs.lines, rs.n = rs.hdr[:0], rs.lines[:0], 0 }

// cursor reads records in order.
type cursor struct {
	rs      *records
	i, line int // the next record's header and line
}

// next reads the next record into rec, without reading its line. It
// returns the line (newline included), the pid of a SYSCALL record (-1:
// none), and whether the record parsed; more is false after the last.
func (c *cursor) next(rec *record.Record) (line []byte, pid int64, ok, more bool) {
	if c.i >= c.rs.n {
		return nil, -1, false, false
	}
	h := c.rs.hdr[c.i*hdrLen : (c.i+1)*hdrLen]
	c.i++
	n := int(binary.LittleEndian.Uint32(h[hLen:]))
	line = c.rs.lines[c.line : c.line+n]
	c.line += n
	typ := binary.LittleEndian.Uint16(h[hType:])
	flags := h[hFlags]
	if flags&flagOK == 0 {
		*rec = record.Record{Type: typ}
		return line, -1, false, true
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
	return line, pid, true, true
}

// Lines gathers records for SubmitLines, so that a receiver hands them to
// the router a group at a time. It belongs to one goroutine.
type Lines struct {
	node string
	records
}

// NewLines returns an empty group for r.
func (r *Router) NewLines() *Lines { return &Lines{node: r.opt.Node} }

// Append adds one record and returns its copy line,
// hostlog.AppendLine(dst, Options.Node, typ, data), newline included, for
// the caller to use too (in the host log): it is valid until g is
// submitted.
func (g *Lines) Append(typ uint16, data []byte) []byte { return g.append(g.node, typ, data) }

// Len returns the number of records in g.
func (g *Lines) Len() int { return g.n }
