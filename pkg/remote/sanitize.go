package remote

import (
	"bytes"
	"strconv"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// What sanitize did to a record line.
type verdict uint8

const (
	keep      verdict = 0
	skip      verdict = 1 << iota // EOE or empty: not sent at all
	replaced                      // newline, CR, NUL or 0x1d replaced by '?'
	truncated                     // cut to the payload limit with a marker
)

// needsReplace reports whether line has a byte that would end or split
// the line at the receiver. A copy is never ENRICHED (the router formats
// it raw), so any separator in it came from a record's text.
func needsReplace(line []byte) bool {
	return bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line, '\r') >= 0 ||
		bytes.IndexByte(line, 0) >= 0 || bytes.IndexByte(line, record.Separator) >= 0
}

// sanitize appends to dst the payload to send for line, at most limit
// bytes, and reports what it changed. One trailing newline is not part of
// the record and is dropped silently.
func sanitize(dst, line []byte, limit int) ([]byte, verdict) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	if len(line) == 0 || record.IsEOE(line) {
		return dst, skip
	}
	v := keep
	body := line
	var marker []byte
	if len(line) > limit {
		v |= truncated
		marker = strconv.AppendInt([]byte(" truncated="), int64(len(line)), 10)
		body = line[:max(0, limit-len(marker))]
	}
	start := len(dst)
	dst = append(dst, body...)
	if needsReplace(body) {
		v |= replaced
		for i := start; i < len(dst); i++ {
			if record.IsBreak(dst[i]) {
				dst[i] = '?'
			}
		}
	}
	dst = append(dst, marker...)
	return dst, v
}
