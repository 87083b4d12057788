package procs

import (
	"reflect"
	"testing"
)

const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:38 /tenants /mnt/my\040cg\134x rw,relatime - cgroup2 cgroup2 rw
60 23 0:5 / /proc rw - proc proc rw
`

func TestParseCgroupMounts(t *testing.T) {
	ms, err := parseCgroupMounts([]byte(hybridMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []cgroupMount{
		{"/sys/fs/cgroup/cpu,cpuacct", "/", false, []string{"rw", "cpu", "cpuacct"}},
		{"/sys/fs/cgroup/memory", "/", false, []string{"rw", "memory"}},
		{"/sys/fs/cgroup/pids", "/", false, []string{"rw", "pids"}},
		{"/sys/fs/cgroup/systemd", "/", false, []string{"rw", "xattr", "name=systemd"}},
		{"/sys/fs/cgroup/unified", "/", true, []string{"rw", "nsdelegate"}},
		{"/mnt/my cg\\x", "/tenants", true, []string{"rw"}},
	}
	if !reflect.DeepEqual(ms, want) {
		t.Errorf("got %#v\nwant %#v", ms, want)
	}
	if got := defaultCgroupRoot(ms); got != "/sys/fs/cgroup/unified" {
		t.Errorf("default root %q", got)
	}
	if got := defaultCgroupRoot(ms[:4]); got != "/sys/fs/cgroup" {
		t.Errorf("default root without v2 %q", got)
	}
}

func TestResolveCgroupDir(t *testing.T) {
	ms, err := parseCgroupMounts([]byte(hybridMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	self, err := parseProcCgroup([]byte(hybridCgroup))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dir  string
		want CgroupDir
	}{
		{"/sys/fs/cgroup/unified/tenants/a", CgroupDir{Dir: "/sys/fs/cgroup/unified/tenants/a", V2: true, Path: "/tenants/a"}},
		{"/sys/fs/cgroup/unified/", CgroupDir{Dir: "/sys/fs/cgroup/unified", V2: true, Path: "/"}},
		{"/sys/fs/cgroup/unified/x/../tenants", CgroupDir{Dir: "/sys/fs/cgroup/unified/tenants", V2: true, Path: "/tenants"}},
		{"/sys/fs/cgroup/pids/tenants/a", CgroupDir{Dir: "/sys/fs/cgroup/pids/tenants/a", Hierarchy: 8, Controllers: "pids", Path: "/tenants/a"}},
		{"/sys/fs/cgroup/cpu,cpuacct/t", CgroupDir{Dir: "/sys/fs/cgroup/cpu,cpuacct/t", Hierarchy: 2, Controllers: "cpu,cpuacct", Path: "/t"}},
		{"/sys/fs/cgroup/systemd/system.slice", CgroupDir{Dir: "/sys/fs/cgroup/systemd/system.slice", Hierarchy: 9, Controllers: "name=systemd", Path: "/system.slice"}},
		{"/mnt/my cg\\x/a", CgroupDir{Dir: "/mnt/my cg\\x/a", V2: true, Path: "/tenants/a"}},
	}
	for _, tt := range tests {
		got, err := resolveCgroupDir(tt.dir, ms, self)
		if err != nil {
			t.Errorf("%s: %v", tt.dir, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.dir, got, tt.want)
		}
	}
	for _, dir := range []string{"tenants/a", "/sys/fs/cgroup/unifiedx/a", "/proc/1", "/sys/fs/cgroup/memoryx"} {
		if got, err := resolveCgroupDir(dir, ms, self); err == nil {
			t.Errorf("%s: got %+v, want an error", dir, got)
		}
	}
	noPids := self
	noPids.V1 = self.V1[:6]
	if got, err := resolveCgroupDir("/sys/fs/cgroup/pids/a", ms, noPids); err == nil {
		t.Errorf("pids without its hierarchy: got %+v, want an error", got)
	}
}

func FuzzParseCgroupMounts(f *testing.F) {
	f.Add([]byte(hybridMountinfo))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, _ := parseCgroupMounts(b)
		for _, m := range ms {
			resolveCgroupDir(m.point+"/x", []cgroupMount{m}, Cgroups{V1: []CgroupV1{{1, "pids", "/"}}})
		}
	})
}
