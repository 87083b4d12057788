package hostlog

import "github.com/auditd-ns/auditd-ns/pkg/record"

// LineFunc returns a function that appends a record's log line, newline
// included, as a Writer with this node and format writes it: what auditd
// feeds its plugins. It is safe for concurrent use.
func LineFunc(node string, f Format) func(dst []byte, typ uint16, data []byte) []byte {
	names := newNameCache()
	return func(dst []byte, typ uint16, data []byte) []byte {
		dst = record.AppendLine(dst, node, typ, data)
		if f == Enriched {
			dst = appendEnriched(dst, data, names)
		}
		return dst
	}
}
