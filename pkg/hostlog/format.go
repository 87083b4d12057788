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
// payload with embedded newlines replaced by spaces, as auditd does.
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
	replace(dst[start:], '\n')
	replace(dst[start:], 0)
	return append(dst, '\n')
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
