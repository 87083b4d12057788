package plugin

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkSubmit is the cost Submit adds to the daemon's receiving
// goroutine for each record: with no plugin, and with one or three that
// take everything (cat to /dev/null); records their queues cannot take are
// dropped, as in the daemon.
func BenchmarkSubmit(b *testing.B) {
	rec := []byte("audit(1700000000.100:10): arch=c000003e syscall=59 success=yes exit=0 " + strings.Repeat("a0=1 ", 40))
	for _, n := range []int{0, 1, 3} {
		b.Run(fmt.Sprintf("%dplugins", n), func(b *testing.B) {
			var confs []*Conf
			for range n {
				c := script(b, `exec cat >/dev/null`)
				confs = append(confs, c)
			}
			r := Start(confs, opts(DefaultQDepth, OverflowIgnore))
			defer r.Stop()
			b.SetBytes(int64(len(rec)))
			b.ResetTimer()
			for range b.N {
				r.Submit(1300, rec)
			}
			b.StopTimer()
			var sent, dropped uint64
			for _, s := range r.Stats() {
				sent, dropped = sent+s.Sent, dropped+s.Dropped
			}
			b.ReportMetric(float64(dropped)/float64(max(1, sent+dropped)), "dropped/record")
		})
	}
}

// BenchmarkSubmitPaced submits at 100,000 records a second, about what the
// kernel here delivers to one reader at most, to one plugin that takes
// everything (cat to /dev/null): it should drop nothing.
func BenchmarkSubmitPaced(b *testing.B) {
	rec := []byte("audit(1700000000.100:10): arch=c000003e syscall=59 success=yes exit=0 " + strings.Repeat("a0=1 ", 40))
	r := Start([]*Conf{script(b, `exec cat >/dev/null`)}, opts(DefaultQDepth, OverflowIgnore))
	defer r.Stop()
	start := time.Now()
	for i := range b.N {
		if i%1000 == 999 {
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * 10 * time.Microsecond)))
		}
		r.Submit(1300, rec)
	}
	b.StopTimer()
	s := r.Stats()[0]
	b.ReportMetric(float64(s.Dropped), "dropped")
}
