package record

import (
	"bytes"
	"errors"
	"fmt"
)

// Separator is auditd's AUDIT_INTERP_SEPARATOR (0x1d): in an ENRICHED log
// line it ends the record and starts the interpretations, so auparse splits
// a line at the first one it finds.
const Separator = 0x1d

// AppendLine appends the auditd log line of one record to dst, newline
// included: an optional "node=NODE " prefix, "type=NAME msg=", then data,
// the record's payload, with embedded newlines replaced by spaces, as
// auditd does. NUL, carriage return and Separator are replaced by spaces
// too: the kernel copies a user message's text verbatim (any process with
// CAP_AUDIT_WRITE, a container's included, chooses it), and a CR would hide
// the rest of the line on a terminal while a Separator would end the record
// for auparse, which reads what follows as ENRICHED interpretations.
//
// The types of the kernel patches are named UNKNOWN[1020], UNKNOWN[1340]
// and UNKNOWN[1341] on purpose (see TypeName).
func AppendLine(dst []byte, node string, typ uint16, data []byte) []byte {
	if node != "" {
		dst = append(dst, "node="...)
		dst = append(dst, node...)
		dst = append(dst, ' ')
	}
	dst = append(dst, "type="...)
	dst = append(dst, TypeName(typ)...)
	dst = append(dst, " msg="...)
	start := len(dst)
	dst = append(dst, data...)
	ReplaceBreaks(dst[start:])
	return append(dst, '\n')
}

// ReplaceBreaks turns every byte that ends or splits a log line (newline,
// carriage return, NUL and Separator) into a space, in place.
func ReplaceBreaks(b []byte) { replaceBreaks(b, true) }

// ReplaceLineBreaks is ReplaceBreaks for a line that may be ENRICHED: it
// keeps Separator.
func ReplaceLineBreaks(b []byte) { replaceBreaks(b, false) }

// denseBreaks is how many breaks of one kind replaceBreaks replaces
// through bytes.IndexByte before it takes b for a hostile text full of
// them and goes over it byte by byte instead.
const denseBreaks = 16

// replaceBreaks searches b once per kind of break with bytes.IndexByte,
// which is vectorised: a record usually has none, and four such passes
// cost a fifth of one pass byte by byte (BenchmarkReplaceBreaks). A text
// with many (a user message is its sender's) would cost a call per
// break: from the denseBreaks-th of a kind on, one pass byte by byte
// replaces every break left.
func replaceBreaks(b []byte, sep bool) {
	kinds := []byte{'\n', '\r', 0, Separator}
	if !sep {
		kinds = kinds[:3]
	}
	for _, c := range kinds {
		rest := b
		for n := 0; ; n++ {
			i := bytes.IndexByte(rest, c)
			if i < 0 {
				break
			}
			if n == denseBreaks {
				replaceEach(b, sep)
				return
			}
			rest[i] = ' '
			rest = rest[i+1:]
		}
	}
}

// replaceEach turns every break in b into a space, byte by byte; with sep
// false it keeps Separator.
func replaceEach(b []byte, sep bool) {
	for i, c := range b {
		if c == '\n' || c == '\r' || c == 0 || c == Separator && sep {
			b[i] = ' '
		}
	}
}

// IsBreak reports whether c ends or splits a log line: newline, carriage
// return, NUL or Separator.
func IsBreak(c byte) bool { return c == '\n' || c == '\r' || c == 0 || c == Separator }

// CleanReceived replaces in place, by '?', every byte of a received line
// that would end or split it in the log: newline, carriage return, NUL, and
// every separator except the one that starts a well-formed ENRICHED tail.
// A peer that forwards an ENRICHED log (audisp-remote of an auditd with
// log_format ENRICHED) sends one separator near the end; one that a user
// message carried sits inside the message's quotes, so the tail after it
// holds the closing quote and is not taken for interpretations. It reports
// whether it replaced any byte.
func CleanReceived(line []byte) (changed bool) {
	keep := -1
	if i := bytes.LastIndexByte(line, Separator); i >= 0 && enrichedTail(line[i+1:]) {
		keep = i
	}
	for i, c := range line {
		if IsBreak(c) && i != keep {
			line[i] = '?'
			changed = true
		}
	}
	return changed
}

// enrichedTail reports whether b reads as auditd's interpretations: it
// starts with an upper-case NAME= and holds no quote of a user message, no
// other separator and no line break.
func enrichedTail(b []byte) bool {
	eq := bytes.IndexByte(b, '=')
	if eq < 1 || bytes.IndexByte(b, '\'') >= 0 {
		return false
	}
	for _, c := range b[:eq] {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	for _, c := range b {
		if IsBreak(c) {
			return false
		}
	}
	return true
}

// Line is one record line of an auditd log, "[node=NODE ]type=NAME
// msg=DATA[<Separator>INTERPRETATIONS]", split by ParseLine. Its slices
// point into the line.
type Line struct {
	// Node is the node= prefix's value, nil when the line has none.
	Node []byte
	// Type is the record type that NAME names (see TypeByName).
	Type uint16
	// Data is the kernel's payload, "audit(SEC.MSEC:SERIAL): text", ready
	// for Parse: without the ENRICHED part and without a trailing newline.
	Data []byte
	// Enriched is what follows the first Separator (auditd's
	// interpretations), nil when the line is raw.
	Enriched []byte
}

// ErrLine is matched (errors.Is) by every ParseLine error.
var ErrLine = errors.New("malformed audit log line")

// LineError says what is wrong with a log line and at which byte.
type LineError struct {
	Offset int
	Reason string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("malformed audit log line at byte %d: %s", e.Offset, e.Reason)
}

// Is reports whether target is ErrLine.
func (e *LineError) Is(target error) bool { return target == ErrLine }

// ParseLine splits an auditd log line (as AppendLine writes it, or auditd
// with log_format RAW or ENRICHED) into its parts. One trailing newline is
// dropped. It does not check the payload's header: Parse does that. It
// does not allocate.
func ParseLine(line []byte) (Line, error) {
	var l Line
	line = bytes.TrimSuffix(line, []byte("\n"))
	i := 0
	if bytes.HasPrefix(line, []byte("node=")) {
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 {
			return l, &LineError{len(line), `no " " after node=`}
		}
		l.Node, i = line[len("node="):sp], sp+1
	}
	if !bytes.HasPrefix(line[i:], []byte("type=")) {
		return l, &LineError{i, `does not start with "type="`}
	}
	i += len("type=")
	name, data, ok := bytes.Cut(line[i:], []byte(" msg="))
	if !ok {
		return l, &LineError{i, `no " msg=" after the type`}
	}
	typ, ok := typeByLineName(name)
	if !ok {
		return l, &LineError{i, "unknown record type name"}
	}
	l.Type = typ
	if j := bytes.IndexByte(data, Separator); j >= 0 {
		data, l.Enriched = data[:j], data[j+1:]
	}
	l.Data = data
	return l, nil
}

// IsEOE reports whether line is an end-of-event (EOE) log line, with or
// without a node= prefix.
func IsEOE(line []byte) bool {
	if bytes.HasPrefix(line, []byte("node=")) {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return false
		}
		line = line[i+1:]
	}
	return bytes.HasPrefix(line, []byte("type=EOE "))
}

// LineTime returns the event time of a log line's audit(SEC.MSEC:SERIAL)
// header: the first "msg=audit(" in the line.
func LineTime(line []byte) (sec uint64, msec uint32, ok bool) {
	i := bytes.Index(line, []byte("msg=audit("))
	if i < 0 {
		return 0, 0, false
	}
	rest := line[i+len("msg=audit("):]
	sec, n, ok := parseUint(rest)
	if !ok || n >= len(rest) || rest[n] != '.' {
		return 0, 0, false
	}
	rest = rest[n+1:]
	ms, n, ok := parseUint(rest)
	if !ok || ms > 999 || n >= len(rest) || rest[n] != ':' {
		return 0, 0, false
	}
	return sec, uint32(ms), true
}

// AppendTime appends an event time as a record header writes it, SEC.MSEC
// with three digits of milliseconds.
func AppendTime(dst []byte, sec uint64, msec uint32) []byte {
	dst = appendUint(dst, sec)
	return append(dst, '.', byte('0'+msec/100%10), byte('0'+msec/10%10), byte('0'+msec%10))
}
