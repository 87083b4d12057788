package record

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// The daemon's own records (DAEMON_START, DAEMON_ERR, ...) are written in
// the host log as auditd writes its own: "op=OP", the op's fields, then the
// daemon's subject and the result. This file holds their text.

// LoginUID returns this process's login uid, as /proc/self/loginuid gives
// it, or UnsetUID when it cannot be read.
func LoginUID() uint32 {
	b, err := os.ReadFile("/proc/self/loginuid")
	if err != nil {
		return UnsetUID
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return UnsetUID
	}
	return uint32(v)
}

// DaemonText returns the text of one of the daemon's own records:
// "op=OP FIELDS auid=A pid=P res=success" (res=failed when !ok). fields
// is "NAME=VALUE ..." or "".
func DaemonText(op, fields string, ok bool) string {
	b := make([]byte, 0, 64+len(fields))
	b = append(b, "op="...)
	b = append(b, op...)
	if fields != "" {
		b = append(b, ' ')
		b = append(b, fields...)
	}
	b = append(b, " auid="...)
	b = strconv.AppendUint(b, uint64(LoginUID()), 10)
	b = append(b, " pid="...)
	b = strconv.AppendInt(b, int64(os.Getpid()), 10)
	return string(appendRes(b, ok))
}

// DaemonStartText returns the text of DAEMON_START, in auditd's order:
// version, log format ("raw" or "enriched"), kernel release, then the
// subject. A version with spaces in it ("(devel) 0123abcd") is joined by
// '-', so that it stays one field.
func DaemonStartText(version, format, kernel string) string {
	b := make([]byte, 0, 128)
	b = append(b, "op=start ver="...)
	b = append(b, strings.Join(strings.Fields(version), "-")...)
	b = append(b, " format="...)
	b = append(b, format...)
	b = append(b, " kernel="...)
	b = append(b, kernel...)
	b = append(b, " auid="...)
	b = strconv.AppendUint(b, uint64(LoginUID()), 10)
	b = append(b, " pid="...)
	b = strconv.AppendInt(b, int64(os.Getpid()), 10)
	b = append(b, " uid="...)
	b = strconv.AppendInt(b, int64(os.Getuid()), 10)
	b = append(b, " ses=4294967295"...)
	return string(appendRes(b, true))
}

// DaemonEndText returns the text of DAEMON_END, in auditd's order.
func DaemonEndText() string {
	b := make([]byte, 0, 96)
	b = append(b, "op=terminate auid="...)
	b = strconv.AppendUint(b, uint64(LoginUID()), 10)
	b = append(b, " uid="...)
	b = strconv.AppendInt(b, int64(os.Getuid()), 10)
	b = append(b, " ses=4294967295 pid="...)
	b = strconv.AppendInt(b, int64(os.Getpid()), 10)
	return string(appendRes(b, true))
}

func appendRes(b []byte, ok bool) []byte {
	if ok {
		return append(b, " res=success"...)
	}
	return append(b, " res=failed"...)
}

// AppendPayload appends a record payload as the kernel writes one,
// "audit(SEC.MSEC:SERIAL): TEXT", for a record the daemon writes itself.
func AppendPayload(dst []byte, t time.Time, serial uint64, text string) []byte {
	dst = append(dst, "audit("...)
	dst = AppendTime(dst, uint64(t.Unix()), uint32(t.Nanosecond()/int(time.Millisecond)))
	dst = append(dst, ':')
	dst = appendUint(dst, serial)
	dst = append(dst, "): "...)
	return append(dst, text...)
}
