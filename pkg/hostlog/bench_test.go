package hostlog_test

import (
	"path/filepath"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

var benchRecord = []byte(`audit(1795719051.788:132): arch=c000003e syscall=44 success=yes exit=60 a0=3 a1=7fff388cb3e0 a2=3c a3=0 items=0 ppid=28507 pid=28510 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="auditd" exe="/usr/sbin/auditd" key=(null)`)

// BenchmarkParseAndWrite is the daemon's per-record path: parse the header,
// append the line, hand batches to the kernel (flush incremental_async).
func BenchmarkParseAndWrite(b *testing.B) {
	w, err := hostlog.Open(hostlog.Options{Path: filepath.Join(b.TempDir(), "audit.log"), Flush: benchFlush, MaxLogFile: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	var r record.Record
	b.SetBytes(int64(len(benchRecord)))
	b.ReportAllocs()
	for b.Loop() {
		if err := record.Parse(&r, 1300, benchRecord); err != nil {
			b.Fatal(err)
		}
		w.Write(r.Type, r.Data)
	}
}

func BenchmarkAppendLine(b *testing.B) {
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = record.AppendLine(buf[:0], "", 1300, benchRecord)
	}
}

var benchFlush = hostlog.FlushIncrementalAsync
