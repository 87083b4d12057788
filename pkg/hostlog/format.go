package hostlog

import (
	"bytes"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// Format is the log format: auditd's log_format.
type Format int

const (
	// Raw writes records as the kernel sent them.
	Raw Format = 1
	// Enriched appends, after a 0x1d byte, the interpreted values of
	// uid/gid, arch and syscall fields, as auditd's ENRICHED does.
	Enriched Format = 2
)

// AppendLine appends the log line of one record to dst, newline included:
// an optional "node=NODE " prefix, "type=NAME msg=", then the record's
// payload with embedded newlines replaced by spaces, as auditd does. NUL,
// carriage return and 0x1d are replaced by spaces too: the kernel copies a
// user message's text verbatim (any process with CAP_AUDIT_WRITE, a
// container's included, chooses it), and a CR would hide the rest of the
// line on a terminal while a 0x1d would end the record for auparse, which
// reads what follows as ENRICHED interpretations.
func AppendLine(dst []byte, node string, typ uint16, data []byte) []byte {
	if node != "" {
		dst = append(dst, "node="...)
		dst = append(dst, node...)
		dst = append(dst, ' ')
	}
	dst = append(dst, "type="...)
	dst = append(dst, record.TypeName(typ)...)
	dst = append(dst, " msg="...)
	start := len(dst)
	dst = append(dst, data...)
	replaceBreaks(dst[start:])
	return append(dst, '\n')
}

// Separator is auditd's AUDIT_INTERP_SEPARATOR: in an ENRICHED line it ends
// the record and starts the interpretations.
const Separator = 0x1d

// replaceBreaks turns every byte that ends or splits a log line (newline,
// carriage return, NUL and Separator) into a space.
func replaceBreaks(b []byte) {
	replace(b, '\n')
	replace(b, '\r')
	replace(b, 0)
	replace(b, Separator)
}

// replace turns every c in b into a space.
func replace(b []byte, c byte) {
	for {
		i := bytes.IndexByte(b, c)
		if i < 0 {
			return
		}
		b[i] = ' '
		b = b[i+1:]
	}
}
