package plugin

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
)

func script(t testing.TB, body string) *Conf {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a plugin's program must be owned by root")
	}
	dir := t.TempDir()
	prog := filepath.Join(dir, "plugin")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"+body+"\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	return &Conf{Name: "test.conf", Active: true, Path: prog, Args: []string{dir}}
}

func opts(q int, o Overflow) Options {
	return Options{QDepth: q, Overflow: o, MaxRestarts: 2, Line: hostlog.LineFunc("", hostlog.Raw), StopGrace: time.Second}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A program plugin gets every record as the host log's line on its stdin,
// EOE included, in order; at Stop it gets what was queued and EOF.
func TestProgramGetsLines(t *testing.T) {
	c := script(t, `exec cat >"$1/out"`)
	r := Start([]*Conf{c}, opts(100, OverflowSyslog))
	r.Submit(1300, []byte("audit(1.002:3): arch=c000003e syscall=59 success=yes"))
	r.Submit(1320, []byte("audit(1.002:3): "))
	r.Submit(1106, []byte("audit(1.003:4): msg='a\nb'"))
	r.Stop()
	b, err := os.ReadFile(filepath.Join(c.Args[0], "out"))
	if err != nil {
		t.Fatal(err)
	}
	want := "type=SYSCALL msg=audit(1.002:3): arch=c000003e syscall=59 success=yes\ntype=EOE msg=audit(1.002:3): \ntype=USER_END msg=audit(1.003:4): msg='a b'\n"
	if string(b) != want {
		t.Errorf("the plugin read\n%q\nwant\n%q", b, want)
	}
	if st := r.Stats(); len(st) != 0 {
		t.Errorf("stats after Stop: %+v", st)
	}
}

// A plugin that never reads fills its queue: Submit does not block, every
// record it could not take is counted, and nothing else is lost.
func TestSlowPluginNeverBlocks(t *testing.T) {
	c := script(t, `exec sleep 1000`)
	r := Start([]*Conf{c}, opts(50, OverflowIgnore))
	defer r.Stop()
	waitFor(t, "the plugin to start", func() bool { return r.Stats()[0].State == "running" })
	const n = 20000
	rec := []byte("audit(1.002:3): " + strings.Repeat("x", 200))
	start := time.Now()
	for range n {
		r.Submit(1300, rec)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%d submits to a stalled plugin took %v", n, d)
	}
	st := r.Stats()[0]
	// The pipe takes some lines (64 KiB), the queue 50, the blocked
	// write a batch (at most batchSize bytes of lines), the rest drop.
	inBatch := uint64(batchSize/len(rec) + 1)
	if sum := st.Sent + st.Dropped + uint64(st.Queued); st.Dropped == 0 || sum > n || sum < n-inBatch || st.Queued != 50 {
		t.Errorf("stats %+v: sent+dropped+queued is not within %d of %d", st, inBatch, n)
	}
	t.Logf("stalled plugin: %+v in %v", st, time.Since(start))
}

// overflow_action suspend stops feeding the plugin until Reload.
func TestOverflowSuspend(t *testing.T) {
	c := script(t, `exec sleep 1000`)
	r := Start([]*Conf{c}, opts(1, OverflowSuspend))
	defer r.Stop()
	for range 5000 {
		r.Submit(1300, []byte("audit(1.002:3): "+strings.Repeat("x", 100)))
	}
	if st := r.Stats()[0]; st.State != "suspended" || st.Dropped == 0 {
		t.Fatalf("stats %+v, want suspended", st)
	}
	r.Reload([]*Conf{c}, OverflowSuspend, 2)
	if st := r.Stats()[0]; st.State == "suspended" {
		t.Errorf("still suspended after Reload: %+v", st)
	}
}

// A plugin that dies is restarted at the next record, at most
// max_restarts times, then left failed; records meanwhile are counted.
func TestDeadPluginRestarts(t *testing.T) {
	c := script(t, `read line; echo "$line" >>"$1/out"; exit 1`)
	r := Start([]*Conf{c}, opts(10, OverflowIgnore))
	defer r.Stop()
	sent := 0
	for i := range 40 {
		r.Submit(1300, []byte(fmt.Sprintf("audit(1.002:%d): ", i)))
		time.Sleep(30 * time.Millisecond)
		sent++
	}
	waitFor(t, "the plugin to fail", func() bool { return r.Stats()[0].State == "failed" })
	st := r.Stats()[0]
	if st.Restarts != 3 || st.Sent+st.Dropped != uint64(sent) || !strings.Contains(st.LastError, "terminated unexpectedly") {
		t.Errorf("stats %+v", st)
	}
	b, _ := os.ReadFile(filepath.Join(c.Args[0], "out"))
	// The first run and each of the 2 restarts read one line.
	if n := strings.Count(string(b), "\n"); n != 3 {
		t.Errorf("the runs read %d lines, want 3:\n%s", n, b)
	}
}

// A program that cannot start (not 0750, not root's) is named and left
// failed; the records are counted.
func TestBadProgram(t *testing.T) {
	c := script(t, `exit 0`)
	os.Chmod(c.Path, 0o700)
	r := Start([]*Conf{c}, opts(10, OverflowIgnore))
	defer r.Stop()
	waitFor(t, "the plugin to fail", func() bool { return r.Stats()[0].State == "failed" })
	r.Submit(1300, []byte("audit(1.002:3): "))
	waitFor(t, "the record to be dropped", func() bool { return r.Stats()[0].Dropped == 1 })
	if st := r.Stats()[0]; !strings.Contains(st.LastError, "need at least 0750") {
		t.Errorf("stats %+v", st)
	}
}

// The builtin af_unix: a socket of the given mode, one reader, the same
// lines; records without a reader are counted as dropped.
func TestAFUnix(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "events")
	c := &Conf{Name: "af_unix.conf", Active: true, Path: BuiltinAFUnix, Socket: sock, Mode: 0o640}
	r := Start([]*Conf{c}, opts(100, OverflowIgnore))
	defer r.Stop()
	waitFor(t, "the socket", func() bool { return r.Stats()[0].State == "listening" })
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o640 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v %v", fi, err)
	}
	r.Submit(1300, []byte("audit(1.002:1): before"))
	waitFor(t, "the record without a reader to drop", func() bool { return r.Stats()[0].Dropped == 1 })
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	// The first record after the connection may still find no reader
	// accepted: send until one arrives.
	var line string
	for i := 0; line == "" && i < 100; i++ {
		r.Submit(1300, []byte(fmt.Sprintf("audit(1.002:%d): hello", i+2)))
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		line, _ = rd.ReadString('\n')
	}
	if !strings.HasPrefix(line, "type=SYSCALL msg=audit(1.002:") || !strings.HasSuffix(line, "): hello\n") {
		t.Errorf("read %q", line)
	}
	r.Stop()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket is still there after Stop: %v", err)
	}
}

// Reload keeps an unchanged plugin (same process, sent SIGHUP), starts a
// new one, restarts a changed one and stops a removed one, as auditd's
// SIGHUP does.
func TestReload(t *testing.T) {
	// The daemon handles SIGHUP, so the programs it starts get its default
	// action. A test binary run with SIGHUP ignored (under nohup) would
	// pass SIG_IGN down instead, and a shell cannot trap a signal ignored
	// on entry: handle it here as the daemon does.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	// (A read that the trapped SIGHUP interrupts fails as at EOF: the
	// trap tells them apart.)
	a := script(t, `trap 'hup=1; echo hup >>"$1/hups"' HUP
touch "$1/ready"
while :; do hup=0; if read line; then echo "$line" >>"$1/out"; elif [ $hup = 0 ]; then break; fi; done`)
	b := script(t, `exec cat >"$1/out"`)
	b.Name = "b.conf"
	r := Start([]*Conf{a}, opts(100, OverflowIgnore))
	defer r.Stop()
	waitFor(t, "a to start", func() bool { _, err := os.Stat(filepath.Join(a.Args[0], "ready")); return err == nil })
	pidA := r.Stats()[0].PID
	r.Reload([]*Conf{a, b}, OverflowIgnore, 2)
	waitFor(t, "b to start", func() bool { st := r.Stats(); return len(st) == 2 && st[1].State == "running" })
	if st := r.Stats(); st[0].PID != pidA || st[1].Name != "b.conf" {
		t.Errorf("after adding b: %+v", st)
	}
	r.Submit(1300, []byte("audit(1.002:3): x"))
	outA, hupsA := filepath.Join(a.Args[0], "out"), filepath.Join(a.Args[0], "hups")
	waitFor(t, "a to take the record and its SIGHUP", func() bool { return fileCount(outA) >= 1 && fileCount(hupsA) >= 1 })
	if out, _ := os.ReadFile(outA); string(out) != "type=SYSCALL msg=audit(1.002:3): x\n" || fileCount(hupsA) != 1 {
		t.Errorf("a's records %q, %d SIGHUPs: want the one record and one SIGHUP", out, fileCount(hupsA))
	}
	changed := *b
	changed.Args = append([]string{}, b.Args...)
	changed.Args = append(changed.Args, "extra")
	pidB := r.Stats()[1].PID
	r.Reload([]*Conf{&changed}, OverflowIgnore, 2)
	waitFor(t, "the changed b to start", func() bool { st := r.Stats(); return len(st) == 1 && st[0].State == "running" })
	if st := r.Stats(); st[0].PID == pidB {
		t.Errorf("b's file changed and its process did not: %+v", st)
	}
	if err := syscallKill0(pidA); err == nil {
		t.Errorf("a was removed and its process %d still runs", pidA)
	}
}

func fileCount(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

func syscallKill0(pid int) error {
	p, _ := os.FindProcess(pid)
	return p.Signal(syscall.Signal(0))
}
