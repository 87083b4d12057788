package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/internal/natstest"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// BenchmarkHostLogExport is the host log's rate, on the daemon's own
// path (ingest: the host log, a real file with flush incremental_async,
// then plugins, router and books), in the same run: without an export
// (none); with an export whose queue a reader empties at once (queue: the
// export's cost on the receiving goroutine, and its queue's reader); and
// with the export publishing to an R3 stream of a 3-node cluster
// (export), whose servers run in a child process at nice 19, as they
// would run on other machines. Rounds of b.N records go through each mode
// in turn, each daemon writing its own file, and each export round is
// followed (untimed) by the publisher draining its queue, so that no
// round competes with another's sending. It reports each mode's median
// records/s, the ratios to none, the records the export's queue dropped,
// and the load average at the start. Run as docs/BENCHMARKS.md does:
//
//	nice go test -run '^$' -bench HostLogExport -benchtime 100000x ./internal/daemon
func BenchmarkHostLogExport(b *testing.B) {
	const rounds = 7
	url, seed := natsChild(b)
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("load average at the start: %s", strings.TrimSpace(string(load)))

	open := func(mode string) *Daemon {
		cfg := config.Default()
		cfg.Log = hostlog.Options{Path: filepath.Join(b.TempDir(), "audit.log"), Flush: hostlog.FlushIncrementalAsync, MaxLogFile: 1 << 34}
		if mode != "none" {
			cfg.ExportJetStream = &config.JetStream{URL: url, Subject: "audit.host.host-a", Stream: natstest.HostStream,
				Credentials: seed, InboxPrefix: "_INBOX_host-a", Memory: 256 << 20}
		}
		d := newDaemon(context.Background(), cfg, hclog.NewNullLogger())
		var err error
		if d.hlog, err = d.openLog(cfg); err != nil {
			b.Fatal(err)
		}
		switch mode {
		case "export":
			if d.export, err = d.startExport(cfg.ExportJetStream); err != nil {
				b.Fatal(err)
			}
		case "queue":
			q, err := queue.Open("", queue.Limits{Memory: 256 << 20}, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			d.export = newExport(ctx, q)
			d.export.cancel = cancel
			go func() {
				defer close(d.export.done)
				for {
					items, err := q.Read(ctx, queueOnlyRead)
					if err != nil {
						return
					}
					q.Commit(items[len(items)-1].Seq)
				}
			}()
		}
		d.router = router.New(router.Options{})
		return d
	}
	none, qonly, exp := open("none"), open("queue"), open("export")
	defer func() {
		for _, d := range []*Daemon{none, qonly, exp} {
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
	// run returns the round's records/s by the clock, and by the CPU
	// time of the thread that ran ingest (locked to it): the rate the
	// host log's own goroutine would keep on a core of its own.
	run := func(d *Daemon) (wall, cpu float64) {
		fill()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		start, c0 := time.Now(), threadCPU(b)
		for _, r := range data {
			d.ingest(record.TypeSyscall, r)
		}
		d.hlog.Flush()
		d.export.flush()
		n := float64(len(data))
		return n / time.Since(start).Seconds(), n / (threadCPU(b) - c0).Seconds()
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
	var rn, rq, re, cn, cq, ce []float64
	b.ResetTimer()
	for range rounds {
		w, c := run(none)
		rn, cn = append(rn, w), append(cn, c)
		w, c = run(qonly)
		rq, cq = append(rq, w), append(cq, c)
		w, c = run(exp)
		re, ce = append(re, w), append(ce, c)
		b.StopTimer()
		drain()
		b.StartTimer()
	}
	b.StopTimer()
	med := func(r []float64) float64 { r = slices.Clone(r); slices.Sort(r); return r[len(r)/2] }
	mn, mq, me := med(rn), med(rq), med(re)
	st := exp.export.p.Status()
	b.ReportMetric(mn, "none-records/s")
	b.ReportMetric(mq, "queue-records/s")
	b.ReportMetric(me, "export-records/s")
	b.ReportMetric(mq/mn, "queue/none")
	b.ReportMetric(me/mn, "export/none")
	b.ReportMetric(float64(exp.export.q.Stats().Dropped.Total()), "dropped")
	cpn, cpq, cpe := med(cn), med(cq), med(ce)
	b.ReportMetric(cpe/cpn, "cpu-export/none")
	b.Logf("by the clock: none %.0f, queue %.0f, export %.0f records/s (medians of %d rounds of %d); queue/none %.3f, export/none %.3f", mn, mq, me, rounds, b.N, mq/mn, me/mn)
	b.Logf("by the ingest thread's CPU time: none %.0f, queue %.0f, export %.0f records/s; queue/none %.3f, export/none %.3f", cpn, cpq, cpe, cpq/cpn, cpe/cpn)
	b.Logf("the ingest goroutine pushed the buffers itself (the export's goroutine behind): queue %d times, export %d times", qonly.export.selfPushes.Load(), exp.export.selfPushes.Load())
	b.Logf("rounds in turn, by the clock: none %.0f; queue %.0f; export %.0f", rn, rq, re)
	b.Logf("rounds in turn, by CPU time: none %.0f; queue %.0f; export %.0f; export acked %d, duplicates %d, retried %d", cn, cq, ce, st.Acked, st.Duplicates, st.Retried)
}

// threadCPU is the CPU time of the calling thread.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// queueOnlyRead is how many items the queue-only reader takes at once.
const queueOnlyRead = 512

// natsChild starts TestNATSChild in a child process at nice 19: a 3-node
// cluster with R3 streams. It returns the cluster's URL and host-a's
// credentials; the child ends with the benchmark.
func natsChild(b *testing.B) (url, seed string) {
	info := filepath.Join(b.TempDir(), "nats")
	cmd := exec.Command("nice", "-n", "19", os.Args[0], "-test.run", "^TestNATSChild$", "-test.v")
	cmd.Env = append(os.Environ(), "AUDITD_NS_NATS_CHILD="+info)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if t, err := os.ReadFile(info); err == nil {
			url, seed, _ = strings.Cut(strings.TrimSpace(string(t)), "\n")
			return url, seed
		}
		if time.Now().After(deadline) {
			b.Fatalf("the cluster's child process did not start: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNATSChild is BenchmarkHostLogExport's cluster, run in a child
// process (natsChild); it skips otherwise. It writes the cluster's URL
// and host-a's credentials file to the file AUDITD_NS_NATS_CHILD names,
// then holds the cluster until its stdin closes.
func TestNATSChild(t *testing.T) {
	info := os.Getenv("AUDITD_NS_NATS_CHILD")
	if info == "" {
		t.Skip("the cluster of BenchmarkHostLogExport, run in a child process")
	}
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 3, u)
	c.AddStreams(u.Admin, 3)
	if err := os.WriteFile(info+".tmp", []byte(c.URL()+"\n"+u.HostA.SeedFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(info+".tmp", info); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, os.Stdin)
}
