package remote

import (
	"strconv"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
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
	if sec, msec, ok := record.LineTime(next); ok {
		now = time.Unix(int64(sec), int64(msec)*int64(time.Millisecond))
	}
	text := "op=queue-lost lost=" + strconv.FormatUint(n, 10)
	dst = record.AppendLine(dst, "", record.TypeDaemonErr, record.AppendPayload(nil, now, 0, text))
	return dst[:len(dst)-1] // a frame's payload has no newline
}

// UnroutedNotice returns the record line sent before a queue item whose
// Unrouted is u (records of the host the router left unrouted: some may
// have been the tenant's):
//
//	type=DAEMON_ERR msg=audit(SEC.MSEC:0): op=queue-lost cause=router-overflow unrouted=N first=SEC.MSEC:SERIAL last=SEC.MSEC:SERIAL
//
// first and last are the headers of the first and last record left
// unrouted, each left out when unknown. The timestamp is as LostNotice's.
func UnroutedNotice(dst []byte, u *queue.Unrouted, next []byte, now time.Time) []byte {
	if sec, msec, ok := record.LineTime(next); ok {
		now = time.Unix(int64(sec), int64(msec)*int64(time.Millisecond))
	}
	text := AppendUnrouted([]byte("op=queue-lost cause=router-overflow unrouted="), u)
	dst = record.AppendLine(dst, "", record.TypeDaemonErr, record.AppendPayload(nil, now, 0, string(text)))
	return dst[:len(dst)-1] // a frame's payload has no newline
}

// AppendUnrouted appends u as UnroutedNotice gives it after "unrouted=":
// N, then " first=SEC.MSEC:SERIAL" and " last=SEC.MSEC:SERIAL" when known.
func AppendUnrouted(dst []byte, u *queue.Unrouted) []byte {
	dst = strconv.AppendUint(dst, u.Records, 10)
	for _, s := range []struct {
		name  string
		stamp queue.Stamp
	}{{" first=", u.First}, {" last=", u.Last}} {
		if !s.stamp.IsZero() {
			dst = append(dst, s.name...)
			dst = record.AppendTime(dst, s.stamp.Sec, s.stamp.Msec)
			dst = strconv.AppendUint(append(dst, ':'), s.stamp.Serial, 10)
		}
	}
	return dst
}
