package test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testaudit"
	"github.com/auditd-ns/auditd-ns/internal/testkernel"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// BenchmarkKernelPath measures the whole kernel path: b.N audited syscalls
// (uname under a keyed rule) made by this process, and the time until the
// registered daemon has every record. One op is one audited syscall and one
// record, so records/s = 1e9 / (ns/op). "bare" is a read-and-discard loop,
// the limit; "daemon" is auditd-ns writing its host log (flush
// incremental_async). Each reports the records the kernel lost meanwhile.
func BenchmarkKernelPath(b *testing.B) {
	ctl := testkernel.Take(b)
	b.Run("bare", func(b *testing.B) { benchBare(b, ctl) })
	b.Run("daemon", func(b *testing.B) { benchDaemon(b, ctl, "") })
	b.Run("daemon-tenant", func(b *testing.B) { benchTenant(b, ctl, false) })
	b.Run("daemon-stalled-tenant", func(b *testing.B) { benchTenant(b, ctl, true) })
}

// benchTenant is "daemon" with the generator inside a registered container
// (by cgroup). Its target is a file, or, stalled, a TCP peer that accepts
// the connection and never reads from it: the host-log rate must not depend
// on it.
func benchTenant(b *testing.B, ctl *source.Control, stalled bool) {
	cg := benchCgroup(b)
	target := fmt.Sprintf("{file: %s/tenant.log}", b.TempDir())
	if stalled {
		target = fmt.Sprintf("{remote: %s}", stalledPeer(b))
	}
	benchDaemon(b, ctl, fmt.Sprintf("name: tenant\ncgroup: %s\ndeliver: %s\nqueue: {memory: 1MiB}\n", cg, target))
}

// stalledPeer listens on loopback, accepts connections and never reads
// from them: a stalled tenant. It returns the address.
func stalledPeer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// unameCgroup, when set, is the cgroup the load generator joins first.
var unameCgroup string

// benchCgroup makes a cgroup (v2) for the load generator, which joins it
// (unameCgroup) until the benchmark function returns, and returns its
// directory. It skips the benchmark without cgroup v2.
func benchCgroup(b *testing.B) string {
	cg := filepath.Join("/sys/fs/cgroup/unified", fmt.Sprintf("auditd-ns-bench-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		b.Skipf("needs cgroup v2 at /sys/fs/cgroup/unified: %v", err)
	}
	unameCgroup = cg
	b.Cleanup(func() {
		unameCgroup = ""
		os.Remove(cg)
	})
	return cg
}

// The kernel does not audit the registered daemon's own syscalls, so the
// load comes from a child process: this test binary run as
// TestUnameHelper, selected by a rule on its exe.
func TestUnameHelper(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("AUDITD_NS_UNAME"))
	if err != nil {
		t.Skip("a load generator for BenchmarkKernelPath, run as a child process")
	}
	if cg := os.Getenv("AUDITD_NS_CGROUP"); cg != "" {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Say ready, and start when told: the parent's timer runs from then.
	os.Stdout.WriteString("ready\n")
	if _, err := os.Stdin.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	uname(n)
}

func benchRule(b testing.TB) string {
	exe, err := os.Executable()
	must(b, err)
	return fmt.Sprintf("-a always,exit -F arch=b64 -S uname -F exe=%s -k bench\n", exe)
}

// measure runs b.N audited syscalls in a child and waits until have()
// reaches base+N. With a daemon's pid, it also reports the CPU time the
// daemon used per op.
func measure(b *testing.B, ctl *source.Control, have func() int64, pid int) {
	base := have()
	cpu0 := cpuSeconds(b, pid)
	lost0 := lost(b, ctl)
	gen := startLoad(b, b.N)
	b.ResetTimer()
	gen.run()
	if err := gen.cmd.Wait(); err != nil {
		b.Fatalf("load generator: %v\n%s", err, gen.stderr.Bytes())
	}
	deadline := time.Now().Add(time.Minute)
	for have() < base+int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d records arrived in a minute", have()-base, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(lost(b, ctl)-lost0), "lost")
	if pid != 0 {
		b.ReportMetric((cpuSeconds(b, pid)-cpu0)*1e9/float64(b.N), "daemon-cpu-ns/op")
	}
}

// load is a load generator: this test binary run as TestUnameHelper.
type load struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
}

// startLoad starts a generator of n audited syscalls (in unameCgroup, when
// set) and waits until it is ready to begin: its start-up (exec, runtime,
// joining the cgroup) is not measured.
func startLoad(b testing.TB, n int) *load {
	exe, _ := os.Executable()
	l := &load{cmd: exec.Command(exe, "-test.run=^TestUnameHelper$")}
	l.cmd.Env = append(os.Environ(), fmt.Sprintf("AUDITD_NS_UNAME=%d", n), "AUDITD_NS_CGROUP="+unameCgroup)
	l.cmd.Stderr = &l.stderr
	var err error
	l.stdin, err = l.cmd.StdinPipe()
	must(b, err)
	stdout, err := l.cmd.StdoutPipe()
	must(b, err)
	must(b, l.cmd.Start())
	ready, _ := bufio.NewReader(stdout).ReadString('\n')
	if ready != "ready\n" {
		l.stdin.Close()
		l.cmd.Wait()
		b.Fatalf("load generator did not start: %q\n%s", ready, l.stderr.Bytes())
	}
	return l
}

// run tells the generator to begin.
func (l *load) run() {
	l.stdin.Write([]byte{'\n'})
	l.stdin.Close()
}

// kill stops a generator that runs until told.
func (l *load) kill() {
	l.cmd.Process.Kill()
	l.cmd.Wait()
}

func cpuSeconds(b *testing.B, pid int) float64 {
	if pid == 0 {
		return 0
	}
	s, err := testaudit.CPUSeconds(pid)
	must(b, err)
	return s
}

func benchBare(b *testing.B, ctl *source.Control) {
	wire, err := auditrule.Build(benchRule(b))
	must(b, err)
	k, err := source.OpenKernel()
	must(b, err)
	defer k.Close()
	must(b, k.Register())
	defer k.Unregister()
	must(b, ctl.SetBacklogLimit(8192))
	must(b, ctl.SetBacklogWaitTime(60000))
	must(b, ctl.SetEnabled(1))
	must(b, ctl.AddRule(wire))
	defer ctl.DeleteRules()
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			typ, data, err := k.Receive(nil)
			if err != nil {
				return
			}
			// Only the generator's calls: the syscalls that change the
			// audit configuration get SYSCALL records too, unkeyed.
			if typ == 1300 && bytes.HasSuffix(bytes.TrimRight(data, "\x00\n"), []byte(`key="bench"`)) {
				got.Add(1)
			}
		}
	}()
	defer func() { k.Interrupt(); <-done }()
	measure(b, ctl, got.Load, 0)
}

func benchDaemon(b *testing.B, ctl *source.Control, container string) {
	dir := b.TempDir()
	extra := "flush: incremental_async\nmax_log_file: 4096\n"
	if container != "" {
		must(b, os.MkdirAll(filepath.Join(dir, "containers"), 0o700))
		must(b, os.WriteFile(filepath.Join(dir, "containers", "c.yaml"), []byte(container), 0o600))
		extra += fmt.Sprintf("containers_dir: %s/containers\nstate_dir: %s/state\n", dir, dir)
	}
	writeConfig(b, dir, extra, "-D\n"+benchRule(b))
	d := start(b, ctl, dir)
	defer d.stop()
	marker := []byte(`key="bench"`)
	f, err := os.Open(d.log)
	must(b, err)
	defer f.Close()
	// Count records as the log grows, reading only what is new.
	var seen int64
	var carry []byte
	buf := make([]byte, 1<<20)
	have := func() int64 {
		for {
			n, _ := f.Read(buf)
			if n == 0 {
				return seen
			}
			chunk := append(carry, buf[:n]...)
			last := bytes.LastIndexByte(chunk, '\n')
			seen += int64(bytes.Count(chunk[:last+1], marker))
			carry = append(carry[:0], chunk[last+1:]...)
		}
	}
	measure(b, ctl, have, d.cmd.Process.Pid)
}

func lost(b *testing.B, ctl *source.Control) uint32 {
	st, err := ctl.Status()
	must(b, err)
	return st.Lost
}
