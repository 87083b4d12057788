// Command loadgen makes uname(2) calls in a loop for a fixed time and
// prints how many it made and how long that took, then what kept it from
// calling faster: "CALLS SECONDS CPU RUNDELAY SLEPT VOLUNTARY INVOLUNTARY".
// CPU is its calling thread's CPU seconds (user and system, the kernel's
// audit work for each call included), RUNDELAY the seconds it was
// runnable but waited for a CPU (/proc/thread-self/schedstat), SLEPT the
// rest of the wall time (asleep: on the kernel's full audit backlog, for
// one), VOLUNTARY and INVOLUNTARY its context switches (getrusage
// RUSAGE_THREAD: it sleeps only when the kernel makes it; an involuntary
// switch is another task taking its CPU). It is the load generator of the
// side-by-side kernel-path benchmark, which audits it with a rule on its
// executable. With -cgroup it first moves itself into that cgroup, to be a
// registered container's process.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	d := flag.Duration("d", 5*time.Second, "how long to run")
	cg := flag.String("cgroup", "", "a cgroup v2 directory to move into first")
	flag.Parse()
	if *cg != "" {
		if err := os.WriteFile(filepath.Join(*cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: joining the cgroup:", err)
			os.Exit(1)
		}
	}
	if err := run(*d); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// threadStats is what the calling thread's kernel accounts say.
type threadStats struct {
	cpu, runDelay  float64 // seconds
	vol, involSwit int64
}

func readThreadStats() (threadStats, error) {
	var s threadStats
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return s, fmt.Errorf("getrusage: %w", err)
	}
	s.vol, s.involSwit = ru.Nvcsw, ru.Nivcsw
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return s, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return s, fmt.Errorf("/proc/thread-self/schedstat: %q", b)
	}
	run, err1 := strconv.ParseInt(f[0], 10, 64)
	wait, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("/proc/thread-self/schedstat: %q", b)
	}
	s.cpu, s.runDelay = float64(run)/1e9, float64(wait)/1e9
	return s, nil
}

func run(d time.Duration) error {
	runtime.LockOSThread() // the accounts read are this thread's
	var u syscall.Utsname
	s0, err := readThreadStats()
	if err != nil {
		return err
	}
	start := time.Now()
	end := start.Add(d)
	n := 0
	for {
		for range 100 {
			if err := syscall.Uname(&u); err != nil {
				return fmt.Errorf("calling uname: %w", err)
			}
		}
		n += 100
		if time.Now().After(end) {
			break
		}
	}
	wall := time.Since(start).Seconds()
	s1, err := readThreadStats()
	if err != nil {
		return err
	}
	cpu, delay := s1.cpu-s0.cpu, s1.runDelay-s0.runDelay
	fmt.Printf("%d %.6f %.6f %.6f %.6f %d %d\n", n, wall, cpu, delay, max(0, wall-cpu-delay), s1.vol-s0.vol, s1.involSwit-s0.involSwit)
	return nil
}
