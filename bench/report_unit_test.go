package bench

import (
	"strings"
	"testing"
)

// TestReportSaysRouterOverflow renders the kernel section from the figures
// of the 21:00 UTC quiet run's round 2 (341,800 events logged, 311,251 in
// the first container's file, no queue drop), with a router overflow of
// 179 batches of 512 records (about those 30,549 missing events; that run
// did not read the router's counters): the records the router never routed
// must show in the summary and in the run's row, not only a queue drop
// count of 0.
func TestReportSaysRouterOverflow(t *testing.T) {
	base := kernelRun{Seconds: 5, Calls: 341800, Syscalls: 341800, Records: 1025422, CPU: 4.9}
	r := &report{Rounds: 1, GenTime: 5e9}
	for _, side := range append(append([]string{}, kernelSides...), tenantSides()...) {
		k := base
		k.Side, k.Round = side, 1
		r.Kernel = append(r.Kernel, k)
	}
	tn := &r.Kernel[len(kernelSides)]
	tn.Copies, tn.Overflow, tn.Unattributed, tn.Partial = 311251, 91648, 4, 12
	md := r.markdown()
	for _, want := range []string{
		"the router left **91648** records unrouted in all",
		"attributed 4 events to no container",
		"91.1% (91.1%–91.1%) of the events",
		"| 311251 | 0 | 0 | 91648 | 4 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report does not say %q:\n%s", want, md)
		}
	}
}
