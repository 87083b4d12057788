package daemon

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

var benchSyscall = []byte(`audit(1795719051.788:132): arch=c000003e syscall=44 success=yes exit=60 a0=3 a1=7fff388cb3e0 a2=3c a3=0 items=0 ppid=28507 pid=28510 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="auditd" exe="/usr/sbin/auditd" key=(null)`)

// BenchmarkIngest is the daemon's per-record path after the receive: the
// host log (a real file, flush incremental_async), then plugins, export,
// router (no container registered) and the books, as the kernel loop runs
// it. One op is one record.
func BenchmarkIngest(b *testing.B) {
	b.Run("file", func(b *testing.B) { benchIngest(b, false) })
	// write_logs = no: the path's own cost, without the file.
	b.Run("discard", func(b *testing.B) { benchIngest(b, true) })
}

func benchIngest(b *testing.B, discard bool) {
	cfg := config.Default()
	d := newDaemon(context.Background(), cfg, hclog.NewNullLogger())
	defer d.lifeStop()
	w, err := hostlog.Open(hostlog.Options{Path: filepath.Join(b.TempDir(), "audit.log"), Flush: hostlog.FlushIncrementalAsync, MaxLogFile: 1 << 30, Discard: discard})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	d.hlog, d.router = w, router.New(router.Options{})
	b.SetBytes(int64(len(benchSyscall)))
	b.ReportAllocs()
	for b.Loop() {
		d.ingest(record.TypeSyscall, benchSyscall)
	}
}
