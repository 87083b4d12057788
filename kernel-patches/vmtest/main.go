// Command vmtest is the in-guest test program for the auditd-ns kernel
// patches. It runs as /init of a qemu guest booted by vmtest.sh, checks the
// audit container ID interface described in DESIGN.md ("Kernel interface"),
// prints one PASS/FAIL line per test and the summary line
// "vmtest: N passed, M failed", and powers the guest off.
//
// It is not a test of the host: it refuses to run unless it is pid 1, since
// it registers as the audit daemon and sets container IDs.
//
// The same binary doubles as the helper processes some tests need (a
// nested orchestrator, an unprivileged writer): see helper.go.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "helper" {
		os.Exit(runHelper(os.Args[2:]))
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vmtest: refusing to run outside the test VM (not pid 1)")
		os.Exit(2)
	}
	fmt.Println() // end the line the firmware left on the console
	if err := setupGuest(); err != nil {
		fmt.Printf("FAIL setup: %v\n", err)
	}
	// vmtest.sh looks for this line on the serial console: lockdep and
	// RCU reports are KERN_WARNING (4) like it, so it shows they would too.
	if err := os.WriteFile("/dev/kmsg", []byte("<4>vmtest-canary: warning-level kernel messages reach the console\n"), 0); err != nil {
		fmt.Printf("INFO /dev/kmsg: %v\n", err)
	}
	mode := guestArg()
	start := time.Now()
	var r runner
	switch mode {
	case "overhead":
		r.run("overhead", testOverheadOnly)
	case "e2e":
		// Only the end-to-end tests of auditd-ns (vmtest.sh BZIMAGE e2e),
		// a quick run while working on the daemon.
		if daemon, _ = startAuditd(); daemon != nil {
			for _, tc := range tests {
				if strings.HasPrefix(tc.name, "e2e/") {
					r.run(tc.name, tc.fn)
				}
			}
		}
	default:
		if strings.Contains(mode, "/") {
			// One test, or those whose names start with mode
			// (vmtest.sh BZIMAGE contid/ns-fields): for kernels
			// whose config the whole suite does not fit, such as
			// config-nons (make kernel-check).
			var err error
			if daemon, err = startAuditd(); err != nil {
				fmt.Printf("INFO no audit daemon: %v\n", err)
			}
			ran := 0
			for _, tc := range tests {
				if strings.HasPrefix(tc.name, mode) {
					r.run(tc.name, tc.fn)
					ran++
				}
			}
			if ran == 0 {
				r.run(mode, func(t *T) { t.Errorf("no test is named %s", mode) })
			}
			break
		}
		if hasContid() {
			var err error
			if daemon, err = startAuditd(); err != nil {
				fmt.Printf("INFO no audit daemon: %v\n", err)
			}
		}
		r.runAll()
	}
	fmt.Printf("INFO tests took %.1fs\n", time.Since(start).Seconds())
	fmt.Printf("vmtest: %d passed, %d failed, %d skipped\n", r.passed, r.failed, r.skipped)
	poweroff()
}

// setupGuest mounts the pseudo file systems the tests read.
func setupGuest() error {
	mounts := []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
	}
	for _, m := range mounts {
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mounting %s: %w", m.dst, err)
		}
	}
	return os.Setenv("PATH", "/bin")
}

// guestArg returns the first word after "--" on the kernel command line,
// which the kernel passes to init as its first argument.
func guestArg() string {
	for _, a := range os.Args[1:] {
		if a != "" && !strings.Contains(a, "=") {
			return a
		}
	}
	return ""
}

// poweroff ends the guest. Without ACPI a power-off only halts, so restart:
// qemu runs with -no-reboot and exits.
func poweroff() {
	unix.Sync()
	time.Sleep(100 * time.Millisecond)
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}
