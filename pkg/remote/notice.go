package remote

import (
	"bytes"
	"strconv"
	"time"
)

// LostNotice returns the record line sent before a queue item whose Lost
// count is n:
//
//	type=DAEMON_ERR msg=audit(SEC.MSEC:0): op=queue-lost lost=N
//
// The timestamp is the one of the record that follows (next), so that the
// notice sorts next to it in ausearch, or now when next has none. Serial 0
// keeps the notice an event of its own.
func LostNotice(dst []byte, n uint64, next []byte, now time.Time) []byte {
	dst = append(dst, "type=DAEMON_ERR msg=audit("...)
	if ts, ok := recordTime(next); ok {
		dst = append(dst, ts...)
	} else {
		dst = strconv.AppendInt(dst, now.Unix(), 10)
		dst = append(dst, '.')
		ms := now.Nanosecond() / int(time.Millisecond)
		dst = append(dst, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	}
	dst = append(dst, ":0): op=queue-lost lost="...)
	return strconv.AppendUint(dst, n, 10)
}

// recordTime returns the SEC.MSEC part of a record's audit(SEC.MSEC:SERIAL)
// header.
func recordTime(line []byte) ([]byte, bool) {
	i := bytes.Index(line, []byte("msg=audit("))
	if i < 0 {
		return nil, false
	}
	rest := line[i+len("msg=audit("):]
	j := bytes.IndexByte(rest, ':')
	if j <= 0 || j > 32 {
		return nil, false
	}
	ts := rest[:j]
	dot := false
	for _, c := range ts {
		switch {
		case c == '.' && !dot:
			dot = true
		case c < '0' || c > '9':
			return nil, false
		}
	}
	return ts, dot
}
