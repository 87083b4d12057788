package hostlog

import (
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
	for i := start; i < len(dst); i++ {
		if dst[i] == '\n' || dst[i] == 0 {
			dst[i] = ' '
		}
	}
	return append(dst, '\n')
}
