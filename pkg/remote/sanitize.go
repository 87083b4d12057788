package remote

import (
	"bytes"
	"strconv"
)

// What sanitize did to a record line.
type verdict uint8

const (
	keep      verdict = 0
	skip      verdict = 1 << iota // EOE or empty: not sent at all
	replaced                      // newline, CR or NUL replaced by '?'
	truncated                     // cut to the payload limit with a marker
)

// isEOE reports whether line is an end-of-event record, with or without
// a leading node= field. auditd's listener would log it as a line of its
// own; audisp-remote strips them the same way.
func isEOE(line []byte) bool {
	if bytes.HasPrefix(line, []byte("node=")) {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return false
		}
		line = line[i+1:]
	}
	return bytes.HasPrefix(line, []byte("type=EOE "))
}

// needsReplace reports whether line has a byte that would end or split
// the line at the receiver.
func needsReplace(line []byte) bool {
	return bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line, '\r') >= 0 || bytes.IndexByte(line, 0) >= 0
}

// sanitize appends to dst the payload to send for line, at most limit
// bytes, and reports what it changed. One trailing newline is not part of
// the record and is dropped silently.
func sanitize(dst, line []byte, limit int) ([]byte, verdict) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	if len(line) == 0 || isEOE(line) {
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
			if c := dst[i]; c == '\n' || c == '\r' || c == 0 {
				dst[i] = '?'
			}
		}
	}
	dst = append(dst, marker...)
	return dst, v
}
