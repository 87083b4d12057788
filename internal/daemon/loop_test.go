package daemon

import (
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// A status poll answered while the kernel's backlog was over its limit
// slept on the backlog itself (the kernel penalizes every audit netlink
// request then) and may have taken the one wake-up of an audited task:
// the daemon must wake the tasks. An empty backlog after tasks slept on
// it is the kernel's missed wake-up. Otherwise nothing is logged.
func TestMayStrand(t *testing.T) {
	for _, c := range []struct {
		name                 string
		backlog, limit, wait uint32
		prevWait             uint32
		want                 bool
	}{
		{"poll slept on a full backlog", 8193, 8192, 0, 0, true},
		{"poll slept on a full backlog, tasks slept before", 9000, 8192, 40, 10, true},
		{"empty backlog after tasks slept", 0, 8192, 40, 10, true},
		{"empty backlog, nobody slept", 0, 8192, 40, 40, false},
		{"busy backlog under its limit", 4000, 8192, 40, 10, false},
		{"at the limit, not over it", 8192, 8192, 0, 0, false},
		{"no limit", 100000, 0, 0, 0, false},
	} {
		st := &source.Status{Backlog: c.backlog, BacklogLimit: c.limit, BacklogWaitTimeActual: c.wait}
		if got := mayStrand(st, c.prevWait); got != c.want {
			t.Errorf("%s: mayStrand = %v, want %v", c.name, got, c.want)
		}
	}
}
