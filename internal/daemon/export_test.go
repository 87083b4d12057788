package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// TestExportGetsTheLogsLines: the export's queue gets every line of the
// host log, in the file's order, byte for byte (without the newline),
// whether the log hands its buffers over (RAW), gives lines one at a time
// (ENRICHED: the RAW part), or keeps none (write_logs no), and whether the
// export's goroutine keeps up or not (behind: the handing goroutine pushes
// them itself).
func TestExportGetsTheLogsLines(t *testing.T) {
	for _, tc := range []struct {
		name    string
		format  hostlog.Format
		discard bool
		behind  bool
	}{
		{"raw", hostlog.Raw, false, false},
		{"raw-behind", hostlog.Raw, false, true},
		{"enriched", hostlog.Enriched, false, false},
		{"discard", hostlog.Raw, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := queue.Open("", queue.Limits{Memory: 64 << 20}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			ctx, cancel := context.WithCancel(context.Background())
			if tc.behind {
				cancel() // split never runs
			}
			defer cancel()
			e := newExport(ctx, q)
			path := filepath.Join(t.TempDir(), "audit.log")
			w, err := hostlog.Open(hostlog.Options{Path: path, Format: tc.format, Discard: tc.discard, Node: "h1",
				OnLine: e.add, Tap: e.tap})
			if err != nil {
				t.Fatal(err)
			}
			// Enough for many 64 KiB buffers, with the daemon's own
			// records and whole lines (a listener's) between them.
			n := 20000
			if tc.behind {
				n = 150000 // more than exportPending buffers
			}
			lines := n
			for i := range n {
				switch {
				case i%5000 == 0:
					w.Daemon(record.TypeDaemonRotate, fmt.Sprintf("op=rotate i=%d", i))
					lines++
				case i%777 == 0:
					w.WriteLine(fmt.Appendf(nil, "node=peer type=USER msg=audit(1764800001.000:%d): i=%d", i, i))
					lines++
				}
				w.Write(record.TypeSyscall, fmt.Appendf(nil, `audit(1764800000.%03d:%d): arch=c000003e syscall=59 success=yes exit=0 uid=0 comm="true" i=%d`, i%1000, i+1, i))
				if i%3000 == 0 {
					w.Flush()
					e.flush()
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.behind && e.selfPushes.Load() == 0 {
				t.Error("the writer's goroutine never pushed the buffers itself")
			}
			e.pushAll()
			var got [][]byte
			for {
				rctx, rcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				items, err := q.Read(rctx, 1000)
				rcancel()
				if err != nil {
					break
				}
				for _, it := range items {
					if it.Lost != 0 {
						t.Errorf("%d lost before %q", it.Lost, it.Data)
					}
					got = append(got, bytes.Clone(it.Data))
				}
				q.Commit(items[len(items)-1].Seq)
			}
			var want [][]byte
			if tc.discard {
				// Nothing in the file: the lines as the log would have them.
				want = nil
			} else {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				for l := range bytes.Lines(b) {
					l = bytes.TrimSuffix(l, []byte("\n"))
					if i := bytes.IndexByte(l, record.Separator); i >= 0 && tc.format == hostlog.Enriched && !bytes.Contains(l, []byte("node=peer")) {
						l = l[:i]
					}
					want = append(want, l)
				}
			}
			if tc.discard {
				// No file: every line, the kernel's records in order.
				if len(got) != lines {
					t.Errorf("exported %d lines, want %d", len(got), lines)
				}
				next := 0
				for _, l := range got {
					var i int
					if _, err := fmt.Sscanf(string(l[bytes.LastIndex(l, []byte(" i="))+3:]), "%d", &i); err == nil && bytes.Contains(l, []byte("SYSCALL")) {
						if i != next {
							t.Fatalf("record %d exported where %d was due: %q", i, next, l)
						}
						next++
					}
				}
				if next != n {
					t.Errorf("%d of %d records exported", next, n)
				}
				return
			}
			if len(want) != lines {
				t.Fatalf("the log has %d lines, want %d", len(want), lines)
			}
			if len(got) != len(want) {
				t.Fatalf("exported %d lines, the log has %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("line %d: exported %q, the log has %q", i, got[i], want[i])
				}
			}
		})
	}
}
