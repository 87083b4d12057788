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

// cleanReceived replaces in place, by '?', every byte of a received line
// that would end or split it in the log: newline, carriage return, NUL, and
// every separator except the one that starts a well-formed ENRICHED tail.
// A peer that forwards an ENRICHED log (audisp-remote of an auditd with
// log_format ENRICHED) sends one separator near the end; one that a user
// message carried sits inside the message's quotes, so the tail after it
// holds the closing quote and is not taken for interpretations.
func cleanReceived(line []byte) {
	keep := -1
	if i := bytes.LastIndexByte(line, record.Separator); i >= 0 && enrichedTail(line[i+1:]) {
		keep = i
	}
	for i, c := range line {
		if record.IsBreak(c) && i != keep {
			line[i] = '?'
		}
	}
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
		if record.IsBreak(c) {
			return false
		}
	}
	return true
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
