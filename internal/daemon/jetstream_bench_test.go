package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/internal/natstest"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// BenchmarkHostLogExport is the host log's rate, on the daemon's own
// path (ingest: the host log, a real file with flush incremental_async,
// then plugins, router and books), without an export and with one to an
// R3 stream of a 3-node cluster in this process, in the same run: rounds
// of b.N records alternate between the two, each daemon writing its own
// file, and each export round is followed (untimed) by the publisher
// draining its queue, so that no round competes with another's sending.
// It reports each mode's median records/s, their ratio (export/none),
// the records the export's queue dropped, and the load average at the
// start. Run as docs/BENCHMARKS.md does:
//
//	nice go test -run '^$' -bench HostLogExport -benchtime 100000x ./internal/daemon
func BenchmarkHostLogExport(b *testing.B) {
	const rounds = 7
	u := natstest.NewUsers(b)
	c := natstest.Start(b, 3, u)
	c.AddStreams(u.Admin, 3)
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("load average at the start: %s", strings.TrimSpace(string(load)))

	open := func(export bool) *Daemon {
		cfg := config.Default()
		cfg.Log = hostlog.Options{Path: filepath.Join(b.TempDir(), "audit.log"), Flush: hostlog.FlushIncrementalAsync, MaxLogFile: 1 << 34}
		if export {
			cfg.ExportJetStream = &config.JetStream{URL: c.URL(), Subject: "audit.host.host-a", Stream: natstest.HostStream,
				Credentials: u.HostA.SeedFile, InboxPrefix: "_INBOX_host-a", Memory: 256 << 20}
		}
		d := newDaemon(context.Background(), cfg, hclog.NewNullLogger())
		var err error
		if d.hlog, err = d.openLog(cfg); err != nil {
			b.Fatal(err)
		}
		if d.export, err = d.startExport(cfg.ExportJetStream); err != nil {
			b.Fatal(err)
		}
		d.router = router.New(router.Options{})
		return d
	}
	none, exp := open(false), open(true)
	defer func() {
		for _, d := range []*Daemon{none, exp} {
			d.export.stop(0)
			d.hlog.Close()
			d.lifeStop()
		}
	}()
	// Wait for the export's connection before timing.
	for !exp.export.p.Status().Connected {
		time.Sleep(10 * time.Millisecond)
	}

	// Each round's records are new to the stream (another serial).
	data := make([][]byte, b.N)
	round := 0
	fill := func() {
		for i := range data {
			data[i] = fmt.Appendf(data[i][:0], `audit(1764800000.%03d:%d): arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55d1 a2=55d2 a3=0 items=2 ppid=1234 pid=5678 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="true" exe="/usr/bin/true" key="bench"`, i%1000, round*b.N+i+1)
		}
		round++
	}
	run := func(d *Daemon) float64 {
		fill()
		start := time.Now()
		for _, r := range data {
			d.ingest(record.TypeSyscall, r)
		}
		d.hlog.Flush()
		d.export.flush()
		return float64(len(data)) / time.Since(start).Seconds()
	}
	drain := func() {
		deadline := time.Now().Add(10 * time.Minute)
		for st := exp.export.q.Stats(); st.MemoryItems+st.SpoolItems > 0; st = exp.export.q.Stats() {
			if time.Now().After(deadline) {
				b.Fatalf("the export did not drain: %+v, publisher %+v", st, exp.export.p.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var rn, re []float64
	b.ResetTimer()
	for range rounds {
		rn = append(rn, run(none))
		re = append(re, run(exp))
		b.StopTimer()
		drain()
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(rn)
	slices.Sort(re)
	mn, me := rn[rounds/2], re[rounds/2]
	st := exp.export.p.Status()
	b.ReportMetric(mn, "none-records/s")
	b.ReportMetric(me, "export-records/s")
	b.ReportMetric(me/mn, "ratio")
	b.ReportMetric(float64(exp.export.q.Stats().Dropped.Total()), "dropped")
	b.Logf("none %.0f, export %.0f records/s (medians of %d rounds of %d); ratio %.3f; rounds none %.0f, export %.0f; export acked %d, duplicates %d, retried %d",
		mn, me, rounds, b.N, me/mn, rn, re, st.Acked, st.Duplicates, st.Retried)
}
