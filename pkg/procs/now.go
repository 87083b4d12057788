package procs

import (
	"os"
	"strconv"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Now attributes by reading /proc/PID/cgroup when asked, and so by where a
// process is when its event is routed, not where it was when the event
// happened: a process that has exited is not attributed, and one that
// moved since is attributed to its new place. It is the fallback when the
// process-events connector is not available (it answers only in the
// initial user and pid namespaces); the status says which is in use.
type Now struct {
	log  hclog.Logger
	mu   sync.Mutex
	dirs map[string]CgroupDir
}

// NewNow returns the /proc-at-routing-time attributor.
func NewNow(log hclog.Logger) *Now {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Now{log: log, dirs: map[string]CgroupDir{}}
}

// Attribute implements router.Attributor: the deepest of dirs that holds
// pid now (at is not used), or, when pid is gone, that holds ppid.
func (n *Now) Attribute(pid, ppid uint32, at int64, dirs []string) int {
	for _, p := range []uint32{pid, ppid} {
		if p == 0 {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(p), 10) + "/cgroup")
		if err != nil {
			continue
		}
		cg, err := parseProcCgroup(b)
		if err != nil {
			return -1
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		for i, dir := range dirs {
			if d, ok := n.dir(dir); ok && cg.Within(d) {
				return i
			}
		}
		return -1
	}
	return -1
}

// Settled implements router.Attributor: waiting does not help.
func (n *Now) Settled(int64) bool { return true }

func (n *Now) dir(path string) (CgroupDir, bool) {
	if d, ok := n.dirs[path]; ok {
		return d, d.Dir != ""
	}
	d, err := CgroupOf(path)
	if err != nil {
		n.log.Warn("a registered cgroup directory is not a cgroup; nothing is attributed to it", "cgroup", path, "error", err)
		d = CgroupDir{}
	}
	if len(n.dirs) > 1<<14 {
		clear(n.dirs)
	}
	n.dirs[path] = d
	return d, err == nil
}
