package procs

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Cgroups says which cgroups a process is in, as /proc/PID/cgroup lists
// them. Values handed out by Tracker are shared: read them, never
// modify V1. The zero value is a process in no known cgroup.
type Cgroups struct {
	// V2 is the path in the cgroup v2 hierarchy ("/" is the root), or ""
	// when the file had no v2 line.
	V2 string
	// V1 lists the v1 hierarchies, by ascending hierarchy ID.
	V1 []CgroupV1
}

// CgroupV1 is a process's place in one cgroup v1 hierarchy.
type CgroupV1 struct {
	// Hierarchy is the hierarchy ID, the first field of /proc/PID/cgroup. It
	// stays the same while the hierarchy is mounted.
	Hierarchy uint32
	// Controllers is the second field as the kernel prints it: "pids",
	// "cpu,cpuacct", "name=systemd".
	Controllers string
	// Path is the path in the hierarchy ("/" is the root).
	Path string
}

// deletedSuffix is what the kernel appends to the v2 path of a process whose
// cgroup was removed (a zombie's, typically).
const deletedSuffix = " (deleted)"

// parseProcCgroup parses the content of /proc/PID/cgroup: lines
// "0::/path" (v2) and "ID:controllers:/path" (v1).
func parseProcCgroup(b []byte) (Cgroups, error) {
	var c Cgroups
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		id, rest, ok1 := bytes.Cut(line, []byte{':'})
		ctrl, path, ok2 := bytes.Cut(rest, []byte{':'})
		if !ok1 || !ok2 {
			return Cgroups{}, fmt.Errorf("line %d: %q: want ID:controllers:path", n, line)
		}
		h, err := strconv.ParseUint(string(id), 10, 32)
		if err != nil {
			return Cgroups{}, fmt.Errorf("line %d: hierarchy ID %q: not a number", n, id)
		}
		p := strings.TrimSuffix(string(path), deletedSuffix)
		if len(p) == 0 || p[0] != '/' {
			return Cgroups{}, fmt.Errorf("line %d: path %q: not absolute", n, path)
		}
		if h == 0 && len(ctrl) == 0 {
			c.V2 = p
			continue
		}
		if h == 0 || len(ctrl) == 0 {
			return Cgroups{}, fmt.Errorf("line %d: %q: a v1 hierarchy needs an ID and controllers", n, line)
		}
		c.V1 = append(c.V1, CgroupV1{Hierarchy: uint32(h), Controllers: string(ctrl), Path: p})
	}
	slices.SortFunc(c.V1, func(a, b CgroupV1) int { return cmp.Compare(a.Hierarchy, b.Hierarchy) })
	return c, nil
}

// PathFor returns the process's path in the hierarchy of d; ok is false
// when the process has no place in that hierarchy. It does not allocate,
// so a caller can walk up the returned path to find the innermost
// registered cgroup.
func (c Cgroups) PathFor(d CgroupDir) (path string, ok bool) {
	if d.V2 {
		return c.V2, c.V2 != ""
	}
	for i := range c.V1 {
		if c.V1[i].Hierarchy == d.Hierarchy {
			return c.V1[i].Path, true
		}
	}
	return "", false
}

// Within reports whether the process is in cgroup d or in a cgroup below
// it. It does not allocate.
func (c Cgroups) Within(d CgroupDir) bool {
	p, ok := c.PathFor(d)
	return ok && pathWithin(p, d.Path)
}

// In reports whether the process is in cgroup d itself.
func (c Cgroups) In(d CgroupDir) bool {
	p, ok := c.PathFor(d)
	return ok && p == d.Path
}

// pathWithin reports whether p is dir or below it; both are clean absolute
// paths.
func pathWithin(p, dir string) bool {
	if !strings.HasPrefix(p, dir) {
		return false
	}
	return len(p) == len(dir) || dir == "/" || p[len(dir)] == '/'
}

// String formats c like /proc/PID/cgroup on one line: "0::/a 8:pids:/a".
func (c Cgroups) String() string {
	var sb strings.Builder
	if c.V2 != "" {
		sb.WriteString("0::" + c.V2)
	}
	for _, v := range c.V1 {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%d:%s:%s", v.Hierarchy, v.Controllers, v.Path)
	}
	return sb.String()
}
