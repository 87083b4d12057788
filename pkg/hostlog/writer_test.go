package hostlog_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

func payload(i int) []byte {
	return fmt.Appendf(nil, "audit(1700000000.%03d:%d): arch=c000003e syscall=59 success=yes exit=0 key=\"exec\"", i%1000, i)
}

func open(t *testing.T, opt hostlog.Options) *hostlog.Writer {
	t.Helper()
	if opt.Path == "" {
		opt.Path = filepath.Join(t.TempDir(), "log", "audit.log")
	}
	w, err := hostlog.Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a newline", path)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	w := open(t, hostlog.Options{Path: filepath.Join(dir, "audit.log")})
	defer w.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, "audit.log"): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, st.Mode(), want)
		}
	}
}

func TestRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "target"), nil, 0o600)
	os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, "audit.log"))
	if _, err := hostlog.Open(hostlog.Options{Path: filepath.Join(dir, "audit.log")}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("opening a symlinked log: got %v, want a symlink error", err)
	}
	os.Mkdir(filepath.Join(dir, "real"), 0o700)
	os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "linkdir"))
	if _, err := hostlog.Open(hostlog.Options{Path: filepath.Join(dir, "linkdir", "audit.log")}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("opening a log in a symlinked directory: got %v, want a symlink error", err)
	}
}

func TestOrderAndFlushModes(t *testing.T) {
	for _, mode := range []hostlog.FlushMode{hostlog.FlushNone, hostlog.FlushIncremental, hostlog.FlushIncrementalAsync, hostlog.FlushData, hostlog.FlushSync} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			w := open(t, hostlog.Options{Flush: mode, Freq: 7})
			const n = 100
			for i := range n {
				w.Write(1300, payload(i))
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := lines(t, w.Path())
			if len(got) != n {
				t.Fatalf("%d lines, want %d", len(got), n)
			}
			for i, l := range got {
				if want := string(record.AppendLine(nil, "", 1300, payload(i))); l+"\n" != want {
					t.Fatalf("line %d = %q, want %q", i, l, want)
				}
			}
			st := w.Stats()
			switch mode {
			case hostlog.FlushData, hostlog.FlushSync:
				if st.Syncs < n {
					t.Errorf("%d syncs for %d records, want one per record", st.Syncs, n)
				}
			case hostlog.FlushIncremental:
				if st.Syncs == 0 {
					t.Errorf("no syncs with incremental")
				}
			case hostlog.FlushNone:
				if st.Syncs != 0 {
					t.Errorf("%d syncs with flush none", st.Syncs)
				}
			}
		})
	}
}

func TestFlushNoneBuffersUntilFlush(t *testing.T) {
	w := open(t, hostlog.Options{Flush: hostlog.FlushNone})
	defer w.Close()
	w.Write(1300, payload(1))
	if b, _ := os.ReadFile(w.Path()); len(b) != 0 {
		t.Fatalf("flush none wrote %d bytes before Flush; want it to batch", len(b))
	}
	w.Flush()
	if got := lines(t, w.Path()); len(got) != 1 {
		t.Fatalf("after Flush: %d lines, want 1", len(got))
	}
}

func TestRotateBySize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	w := open(t, hostlog.Options{Path: path, MaxLogFile: 100 << 10, NumLogs: 3, Flush: hostlog.FlushNone})
	const n = 10000 // about 1 MB: several rotations
	for i := range n {
		w.Write(1300, payload(i))
	}
	w.Close()
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Errorf("%s.3 exists; num_logs 3 keeps audit.log, .1 and .2", path)
	}
	total := 0
	for _, p := range []string{path, path + ".1", path + ".2"} {
		got := lines(t, p)
		total += len(got)
		if p != path && !strings.HasPrefix(got[len(got)-1], "type=DAEMON_ROTATE ") {
			t.Errorf("%s ends with %q, want a DAEMON_ROTATE record", p, got[len(got)-1])
		}
	}
	if st := w.Stats(); st.Rotations < 5 {
		t.Errorf("%d rotations, want at least 5", st.Rotations)
	}
	if total == 0 || total > n+100 {
		t.Errorf("%d lines kept", total)
	}
}

func TestKeepLogs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w := open(t, hostlog.Options{Path: path, MaxLogFile: 64 << 10, NumLogs: 2, MaxLogFileAction: hostlog.Action{Kind: hostlog.ActionKeepLogs}, Flush: hostlog.FlushNone})
	for i := range 5000 {
		w.Write(1300, payload(i))
	}
	w.Close()
	n := 0
	for _, p := range append([]string{path}, globLogs(path)...) {
		n += len(lines(t, p))
	}
	if got := len(globLogs(path)); got < 3 {
		t.Errorf("keep_logs kept %d rotated files, want every one (at least 3)", got)
	}
	if want := 5000; n < want {
		t.Errorf("keep_logs lost records: %d lines, want at least %d", n, want)
	}
}

func globLogs(path string) []string {
	m, _ := filepath.Glob(path + ".*")
	return m
}

func TestRotateNow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w := open(t, hostlog.Options{Path: path})
	w.Write(1300, payload(1))
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	w.Write(1300, payload(2))
	w.Close()
	old := lines(t, path+".1")
	if len(old) != 2 || !strings.HasPrefix(old[1], "type=DAEMON_ROTATE msg=audit(") {
		t.Errorf("rotated file = %q, want the record then DAEMON_ROTATE", old)
	}
	if cur := lines(t, path); len(cur) != 1 || !strings.Contains(cur[0], ":2): ") {
		t.Errorf("new file = %q, want the second record", cur)
	}
}

func TestRepairsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	good := string(record.AppendLine(nil, "", 1300, payload(1)))
	os.WriteFile(path, []byte(good+"type=SYSCALL msg=audit(17"), 0o600)
	w := open(t, hostlog.Options{Path: path})
	w.Write(1300, payload(2))
	w.Close()
	got := lines(t, path)
	if len(got) != 2 || got[0]+"\n" != good {
		t.Errorf("after repair: %q", got)
	}
	if st := w.Stats(); st.RepairedBytes != int64(len("type=SYSCALL msg=audit(17")) {
		t.Errorf("RepairedBytes = %d", st.RepairedBytes)
	}
}

func TestMaxLogFileSuspend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w := open(t, hostlog.Options{Path: path, MaxLogFile: 10 << 10, MaxLogFileAction: hostlog.Action{Kind: hostlog.ActionSuspend}, Flush: hostlog.FlushData})
	for i := range 1000 {
		w.Write(1300, payload(i))
	}
	st := w.Stats()
	if !st.Suspended || st.DroppedSuspend == 0 {
		t.Fatalf("stats %+v: want suspended with dropped records", st)
	}
	// The admin makes room (here: rotates), then resumes (SIGUSR2).
	w.Rotate()
	w.Resume()
	w.Write(1300, payload(5000))
	w.Close()
	got := lines(t, path)
	if !strings.Contains(got[len(got)-1], ":5000): ") || !strings.HasPrefix(got[len(got)-2], "type=DAEMON_RESUME ") {
		t.Errorf("after resume the log ends %q", got[len(got)-2:])
	}
}

func TestHaltAction(t *testing.T) {
	halted := make(chan string, 1)
	path := filepath.Join(t.TempDir(), "audit.log")
	w := open(t, hostlog.Options{Path: path, MaxLogFile: 4 << 10, MaxLogFileAction: hostlog.Action{Kind: hostlog.ActionHalt}, Flush: hostlog.FlushData,
		Halt: func(r string) { halted <- r }})
	defer w.Close()
	for i := range 200 {
		w.Write(1300, payload(i))
	}
	if r := <-halted; !strings.Contains(r, "max_log_file") {
		t.Errorf("halt reason %q", r)
	}
}

// Interpretations come from the record's text: a value a user message
// chose cannot start another part of the line.
func TestEnrichedValuesCannotSplit(t *testing.T) {
	w := open(t, hostlog.Options{Format: hostlog.Enriched, Flush: hostlog.FlushData})
	w.Write(1005, []byte("audit(1.002:3): pid=1 uid=0 auid=0 msg='op=x uid=7\x1dAUID=\"forged\"\r'"))
	w.Close()
	got, _ := os.ReadFile(w.Path())
	if n := bytes.Count(got, []byte{0x1d}); n != 1 || bytes.IndexByte(got, '\r') >= 0 {
		t.Errorf("%d separators (want 1) or a CR in %q", n, got)
	}
}

func TestEnrichedFormat(t *testing.T) {
	w := open(t, hostlog.Options{Format: hostlog.Enriched, Flush: hostlog.FlushData})
	w.Write(1300, []byte(`audit(1.002:3): arch=c000003e syscall=59 success=yes auid=4294967295 uid=0 comm="a b"`))
	w.Close()
	want := "type=SYSCALL msg=audit(1.002:3): arch=c000003e syscall=59 success=yes auid=4294967295 uid=0 comm=\"a b\"\x1dARCH=x86_64 SYSCALL=execve AUID=\"unset\" UID=\"root\"\n"
	if got, _ := os.ReadFile(w.Path()); !bytes.Equal(got, []byte(want)) {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
}

// TestDiscard is write_logs = no: records are counted, no file is made,
// and rotation and reconfiguring to another discarding writer do nothing.
func TestDiscard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "audit.log")
	w := open(t, hostlog.Options{Path: path, Discard: true, NumLogs: 2})
	for i := range 10 {
		if err := w.Write(1300, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteLine([]byte("type=USER msg=audit(1.000:1): copy")); err != nil {
		t.Fatal(err)
	}
	if err := w.Rotate(); err != nil {
		t.Errorf("Rotate with write_logs = no: %v", err)
	}
	if err := w.Reconfigure(hostlog.Options{Path: path, Discard: true}); err != nil {
		t.Errorf("Reconfigure: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := w.Stats(); st.Records != 11 || st.Bytes != 0 {
		t.Errorf("stats %+v, want 11 records and 0 bytes", st)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("write_logs = no made %s: %v", filepath.Dir(path), err)
	}
}
