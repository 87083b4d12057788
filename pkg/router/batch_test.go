package router

import (
	"bytes"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// A record read back from a batch (nextRecord) must be what parsing its
// copy line finds, without the line being read again; the line must be
// hostlog's; a record whose header does not parse must come back as such.
func TestBatchRecordIsParsedLine(t *testing.T) {
	payloads := []string{
		`audit(1700000000.123:42): arch=c000003e syscall=59 success=yes exit=0 items=0 ppid=7 pid=8 comm="ls"`,
		`audit(1700000000.999:18446744073709551615): arch=c000003e syscall=59 per=400000 ppid=1 pid=4294967295`,
		`audit(1700000000.123:43): arch=c000003e syscall=59 pid=99999999999`,
		`audit(1.002:3): cwd="/a` + "\n" + `b" x=` + "\x00",
		`audit(1.002:3):`,
		`audit(1.002:3): `,
		"audit(1.002:3): text\x00\x00",
		`garbage`,
		`audit(1.2:): x=1`,
		``,
	}
	for _, node := range []string{"", "h1"} {
		for _, typ := range []uint16{record.TypeSyscall, record.TypeEOE, 1302, 9999} {
			var buf []byte
			var lines [][]byte
			for _, p := range payloads {
				var line []byte
				buf, line = appendRecord(buf, node, typ, []byte(p))
				lines = append(lines, bytes.Clone(line))
			}
			rest := buf
			for i, p := range payloads {
				want := hostlog.AppendLine(nil, node, typ, []byte(p))
				if !bytes.Equal(lines[i], want) {
					t.Fatalf("%q: line %q, want %q", p, lines[i], want)
				}
				var got, parsed record.Record
				line, pid, ok, next := nextRecord(&got, rest)
				rest = next
				if !bytes.Equal(line, want) {
					t.Fatalf("%q: read back line %q, want %q", p, line, want)
				}
				data := want[len(want)-1-len(p) : len(want)-1]
				err := record.Parse(&parsed, typ, data)
				if ok != (err == nil) {
					t.Fatalf("%q: read back as parsed %v, Parse says %v", p, ok, err)
				}
				if !ok {
					continue
				}
				if got.Type != parsed.Type || got.Sec != parsed.Sec || got.Msec != parsed.Msec || got.Serial != parsed.Serial ||
					!bytes.Equal(got.Data, parsed.Data) || !bytes.Equal(got.Text, parsed.Text) {
					t.Fatalf("%q: read back %+v, Parse gives %+v", p, got, parsed)
				}
				wantPID := int64(-1)
				if v, ok := syscallPID(parsed.Text); ok && typ == record.TypeSyscall && v <= 1<<32-1 {
					wantPID = int64(v)
				}
				if pid != wantPID {
					t.Fatalf("%q: pid %d, want %d", p, pid, wantPID)
				}
			}
			if len(rest) != 0 {
				t.Fatalf("%d bytes left after the last record", len(rest))
			}
		}
	}
}
