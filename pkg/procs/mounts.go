package procs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// CgroupDir is a registered cgroup directory resolved to a place in one
// cgroup hierarchy: what Cgroups.Within compares with. Resolve it once, at
// registration, with CgroupOf or Tracker.Dir.
type CgroupDir struct {
	// Dir is the directory as resolved (absolute, symlinks followed).
	Dir string
	// V2 is true for the cgroup v2 hierarchy; Hierarchy is then 0.
	V2 bool
	// Hierarchy is the v1 hierarchy ID, as in /proc/PID/cgroup.
	Hierarchy uint32
	// Controllers names the v1 hierarchy ("pids", "name=systemd"); empty
	// for v2.
	Controllers string
	// Path is the cgroup's path in its hierarchy, as /proc/PID/cgroup
	// prints it: "/tenants/a".
	Path string
}

// cgroupMount is one cgroup or cgroup2 mount from /proc/self/mountinfo.
type cgroupMount struct {
	point string   // mount point
	root  string   // the mount's root in the hierarchy
	v2    bool     // cgroup2
	opts  []string // super options (v1: include the controllers)
}

// parseCgroupMounts returns the cgroup and cgroup2 mounts listed in the
// content of a mountinfo file (moby/sys/mountinfo parses it, octal escapes
// such as \040 undone).
func parseCgroupMounts(b []byte) ([]cgroupMount, error) {
	infos, err := mountinfo.GetMountsFromReader(bytes.NewReader(b), mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, err
	}
	ms := make([]cgroupMount, 0, len(infos))
	for _, m := range infos {
		ms = append(ms, cgroupMount{
			point: m.Mountpoint,
			root:  m.Root,
			v2:    m.FSType == "cgroup2",
			opts:  strings.Split(m.VFSOptions, ","),
		})
	}
	return ms, nil
}

// CgroupOf resolves dir, an absolute path under a cgroup mount such as
// /sys/fs/cgroup/unified/tenants/a or /sys/fs/cgroup/pids/tenants/a, to its
// hierarchy and path, from /proc/self/mountinfo and /proc/self/cgroup. The
// directory need not exist yet.
func CgroupOf(dir string) (CgroupDir, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return CgroupDir{}, fmt.Errorf("resolving cgroup %s: %w", dir, err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return CgroupDir{}, fmt.Errorf("resolving cgroup %s: %w", dir, err)
	}
	cg, err := parseProcCgroup(self)
	if err != nil {
		return CgroupDir{}, fmt.Errorf("resolving cgroup %s: /proc/self/cgroup: %w", dir, err)
	}
	mounts, err := parseCgroupMounts(mi)
	if err != nil {
		return CgroupDir{}, fmt.Errorf("resolving cgroup %s: /proc/self/mountinfo: %w", dir, err)
	}
	return resolveCgroupDir(dir, mounts, cg)
}

// resolveCgroupDir is CgroupOf with the mount table and the caller's own
// cgroups (which name the v1 hierarchies) given.
func resolveCgroupDir(dir string, mounts []cgroupMount, self Cgroups) (CgroupDir, error) {
	if !filepath.IsAbs(dir) {
		return CgroupDir{}, fmt.Errorf("resolving cgroup %s: not an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	var m *cgroupMount
	for i := range mounts {
		if pathWithin(dir, mounts[i].point) && (m == nil || len(mounts[i].point) > len(m.point)) {
			m = &mounts[i]
		}
	}
	if m == nil {
		return CgroupDir{}, fmt.Errorf("resolving cgroup %s: not under a cgroup mount", dir)
	}
	d := CgroupDir{Dir: dir, V2: m.v2}
	d.Path = filepath.Join(m.root, strings.TrimPrefix(dir, m.point))
	if !strings.HasPrefix(d.Path, "/") {
		d.Path = "/" + d.Path
	}
	if m.v2 {
		return d, nil
	}
	h, ok := hierarchyOf(m.opts, self.V1)
	if !ok {
		return CgroupDir{}, fmt.Errorf("resolving cgroup %s: the v1 mount %s (%s) matches no hierarchy of /proc/self/cgroup", dir, m.point, strings.Join(m.opts, ","))
	}
	d.Hierarchy, d.Controllers = h.Hierarchy, h.Controllers
	return d, nil
}

// hierarchyOf finds the v1 hierarchy whose controllers ("cpu,cpuacct",
// "name=systemd") are all among a mount's options; the one naming most
// controllers wins.
func hierarchyOf(opts []string, hs []CgroupV1) (CgroupV1, bool) {
	best, bestN := CgroupV1{}, 0
	for _, h := range hs {
		ctrls := strings.Split(h.Controllers, ",")
		all := true
		for _, c := range ctrls {
			if !slices.Contains(opts, c) {
				all = false
				break
			}
		}
		if all && len(ctrls) > bestN {
			best, bestN = h, len(ctrls)
		}
	}
	return best, bestN > 0
}

// defaultCgroupRoot is the v2 mount at /sys/fs/cgroup/unified when there is
// one, else /sys/fs/cgroup.
func defaultCgroupRoot(mounts []cgroupMount) string {
	for _, m := range mounts {
		if m.v2 && m.point == "/sys/fs/cgroup/unified" {
			return m.point
		}
	}
	return "/sys/fs/cgroup"
}
