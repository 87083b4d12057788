// Command loadgen makes uname(2) calls in a loop for a fixed time and
// prints how many it made and how long that took: "CALLS SECONDS". It is
// the load generator of the side-by-side kernel-path benchmark, which
// audits it with a rule on its executable. With -cgroup it first moves
// itself into that cgroup, to be a registered container's process.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
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

func run(d time.Duration) error {
	var u syscall.Utsname
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
	fmt.Printf("%d %.6f\n", n, time.Since(start).Seconds())
	return nil
}
