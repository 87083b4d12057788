package remote_test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run when the package leaves goroutines or file
// descriptors behind.
func TestMain(m *testing.M) {
	// The runtime's network poller keeps two descriptors once started.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	fds := countFDs()
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(fds); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func checkLeaks(fds int) error {
	var stuck []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		stuck = leakedGoroutines()
		now := countFDs()
		if len(stuck) == 0 && now <= fds {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leak check: %d file descriptors at start, %d at end; goroutines left:\n%s",
				fds, now, strings.Join(stuck, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leakedGoroutines returns the stacks of goroutines running this
// package's code.
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "auditd-ns/pkg/remote.") && !strings.Contains(g, "TestMain") && !strings.Contains(g, "leakedGoroutines") {
			out = append(out, g)
		}
	}
	return out
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}
