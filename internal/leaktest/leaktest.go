// Package leaktest finds goroutines that outlive what started them, for
// the project's leak tests. It is for tests only.
package leaktest

import (
	"runtime"
	"strings"
	"time"
)

// Goroutines returns the stacks of the goroutines that run code whose
// function names start with prefix (a package path and a dot, or the
// module path for all of the project), but for the tests' own (those
// under testing.tRunner, and the caller of Goroutines), and those whose
// only frames under prefix start with one of done: functions that have
// done their work and only return.
func Goroutines(prefix string, done ...string) []string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		ours := strings.Count(g, prefix)
		for _, d := range done {
			ours -= strings.Count(g, d)
		}
		if ours > 0 && !strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "leaktest.Goroutines(") {
			out = append(out, g)
		}
	}
	return out
}

// Left is Goroutines once they are gone, or once d has passed: a goroutine
// that has done its work may take a moment to leave the runtime's list.
// With d zero it looks once.
func Left(d time.Duration, prefix string, done ...string) []string {
	gs := Goroutines(prefix, done...)
	for end := time.Now().Add(d); len(gs) > 0 && time.Now().Before(end); gs = Goroutines(prefix, done...) {
		time.Sleep(10 * time.Millisecond)
	}
	return gs
}
