package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// T collects the failures of one test.
type T struct {
	name    string
	fails   []string
	skipped string
}

// Errorf records a failure and lets the test go on.
func (t *T) Errorf(format string, args ...any) {
	t.fails = append(t.fails, fmt.Sprintf(format, args...))
}

// errSkip stops a test that cannot run on this kernel.
var errSkip = errors.New("skip")

// Skipf stops the test, saying exactly what is missing.
func (t *T) Skipf(format string, args ...any) {
	t.skipped = fmt.Sprintf(format, args...)
	panic(errSkip)
}

// Fatalf records a failure and stops the test.
func (t *T) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	panic(errSkip)
}

type runner struct {
	passed, failed, skipped int
}

func (r *runner) run(name string, fn func(*T)) {
	t := &T{name: name}
	start := time.Now()
	func() {
		defer func() {
			if v := recover(); v != nil && v != errSkip {
				t.Errorf("panic: %v", v)
			}
		}()
		fn(t)
	}()
	d := time.Since(start).Seconds()
	switch {
	case len(t.fails) > 0:
		r.failed++
		fmt.Printf("FAIL %s (%.2fs)\n", name, d)
		for _, f := range t.fails {
			fmt.Printf("FAIL   %s: %s\n", name, strings.ReplaceAll(f, "\n", "\n       "))
		}
	case t.skipped != "":
		r.skipped++
		fmt.Printf("SKIP %s: %s\n", name, t.skipped)
	default:
		r.passed++
		fmt.Printf("PASS %s (%.2fs)\n", name, d)
	}
}

// runAll runs every test but the overhead measurement (make kernel-bench
// boots the kernels without debugging options for that, guest argument
// "overhead"): the end-to-end test, which hands the kernel to auditd-ns
// for a while, near the end, and last the checks ("zz/") over everything
// the others logged.
func (r *runner) runAll() {
	rank := func(name string) int {
		switch {
		case strings.HasPrefix(name, "overhead/"):
			return 0
		case strings.HasPrefix(name, "e2e/"):
			return 2
		case strings.HasPrefix(name, "zz/"):
			return 3 // over the records of every other test
		}
		return 1
	}
	sort.SliceStable(tests, func(i, j int) bool { return rank(tests[i].name) < rank(tests[j].name) })
	for _, tc := range tests {
		if strings.HasPrefix(tc.name, "overhead/") {
			continue
		}
		r.run(tc.name, tc.fn)
	}
	if daemon != nil {
		fmt.Printf("INFO audit socket overflows: %d\n", daemon.lost.Load())
		daemon.samples()
	}
}
