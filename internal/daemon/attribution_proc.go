package daemon

import (
	"fmt"
	"os"
	"strings"

	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// procAttributor reads /proc/PID/cgroup of a record's process (or of its
// parent when the process is gone) at routing time. It is the fallback when
// the process-events connector is not available (it answers only in the
// host's initial network namespace); it misses processes that exited before
// their records were routed.
func procAttributor() router.Attributor {
	return func(pid, ppid uint32, dirs []string) int {
		for _, p := range []uint32{pid, ppid} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p))
			if err != nil {
				continue
			}
			for i, dir := range dirs {
				if inCgroup(string(b), dir) {
					return i
				}
			}
			return -1
		}
		return -1
	}
}

// inCgroup reports whether /proc/PID/cgroup content places the process in
// the cgroup directory dir or below it.
func inCgroup(content, dir string) bool {
	for _, line := range strings.Split(content, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
			var mount string
			if parts[0] == "0" {
				mount = root
			} else {
				name := strings.TrimPrefix(parts[1], "name=")
				mount = root + "/" + name
			}
			full := strings.TrimSuffix(mount+parts[2], "/")
			if full == dir || strings.HasPrefix(full, dir+"/") {
				return true
			}
		}
	}
	return false
}
