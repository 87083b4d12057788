package source

import (
	"os"
	"runtime"
)

// SpareProcs is how many processors (Go's Ps) AddSpareProcs adds to
// GOMAXPROCS.
const SpareProcs = 2

// AddSpareProcs raises GOMAXPROCS by SpareProcs, unless the GOMAXPROCS
// environment variable sets it, and returns the value in force. A reader
// of the kernel calls it once at start.
//
// A goroutine in a system call keeps its processor until the runtime's
// monitor thread (sysmon) takes it back, and sysmon does so at once when
// no processor is idle. With GOMAXPROCS at the number of CPUs, a reader
// that works while the host log's fdatasync (or another service's
// blocking call) holds the other processor leaves none idle, so each such
// call loses its processor: sysmon hands it to a new thread, the call
// returns to find it gone and waits for another, each step a wake-up of a
// thread. Two spare processors let the calls that block keep theirs (for
// 10 ms, sysmon's limit); they run no more Go code at once than the CPUs
// allow, the kernel still shares the CPUs.
//
// Setting GOMAXPROCS ends the runtime's own updates of it when the
// process's CPU limit changes (Go 1.25).
func AddSpareProcs() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	n := runtime.GOMAXPROCS(0) + SpareProcs
	runtime.GOMAXPROCS(n)
	return n
}
