package jetstream

import (
	"strconv"
	"strings"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// formatUnrouted is the UnroutedHeader value of u.
func formatUnrouted(u queue.Unrouted) string { return string(remote.AppendUnrouted(nil, &u)) }

// parseUnrouted reads an UnroutedHeader value, as formatUnrouted writes
// it and nothing else: the consumer writes a notice of its own from the
// numbers, never the header's text.
func parseUnrouted(v string) (queue.Unrouted, bool) {
	f := strings.Split(v, " ")
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil || n == 0 || len(f) > 3 {
		return queue.Unrouted{}, false
	}
	u := queue.Unrouted{Records: n}
	for _, field := range f[1:] {
		name, val, _ := strings.Cut(field, "=")
		var rec record.Record
		if record.Parse(&rec, 0, []byte("audit("+val+"):")) != nil || len(rec.Text) != 0 {
			return queue.Unrouted{}, false
		}
		st := queue.Stamp{Sec: rec.Sec, Msec: rec.Msec, Serial: rec.Serial}
		switch {
		case name == "first" && u.First.IsZero() && u.Last.IsZero():
			u.First = st
		case name == "last" && u.Last.IsZero():
			u.Last = st
		default:
			return queue.Unrouted{}, false
		}
	}
	return u, true
}
