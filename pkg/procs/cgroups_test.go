package procs

import (
	"reflect"
	"testing"
)

// hybridCgroup is /proc/PID/cgroup on a host with v1 hierarchies and v2 at
// /sys/fs/cgroup/unified (this project's test machines).
const hybridCgroup = `9:name=systemd:/
8:pids:/tenants/a
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/1c8061fa7e6342e04f91c36c7a8bd18f
3:cpuset:/
2:cpu,cpuacct:/tenants/a/web
0::/tenants/a/b
`

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		name, in string
		want     Cgroups
	}{
		{"v2 only", "0::/user.slice/session-1.scope\n", Cgroups{V2: "/user.slice/session-1.scope"}},
		{"v2 root", "0::/\n", Cgroups{V2: "/"}},
		{"no newline", "0::/a", Cgroups{V2: "/a"}},
		{"deleted", "0::/tenants/gone (deleted)\n", Cgroups{V2: "/tenants/gone"}},
		{"colon in path", "0::/a:b\n", Cgroups{V2: "/a:b"}},
		{"v1 only", "2:pids:/x\n1:name=systemd:/\n", Cgroups{V1: []CgroupV1{{1, "name=systemd", "/"}, {2, "pids", "/x"}}}},
		{"hybrid", hybridCgroup, Cgroups{V2: "/tenants/a/b", V1: []CgroupV1{
			{2, "cpu,cpuacct", "/tenants/a/web"},
			{3, "cpuset", "/"},
			{4, "memory", "/process_api/1c8061fa7e6342e04f91c36c7a8bd18f"},
			{5, "devices", "/"},
			{6, "freezer", "/"},
			{7, "blkio", "/"},
			{8, "pids", "/tenants/a"},
			{9, "name=systemd", "/"},
		}}},
		{"empty", "", Cgroups{}},
	}
	for _, tt := range tests {
		got, err := parseProcCgroup([]byte(tt.in))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", tt.name, got, tt.want)
		}
	}
}

func TestParseProcCgroupErrors(t *testing.T) {
	for _, in := range []string{
		"0:/a\n",
		"x::/a\n",
		"0::a\n",
		"0::\n",
		"3::/a\n",
		"0:pids:/a\n",
		"0::/a\nnonsense\n",
		"-1::/a\n",
		"4294967296:pids:/\n",
	} {
		if got, err := parseProcCgroup([]byte(in)); err == nil {
			t.Errorf("%q: got %#v, want an error", in, got)
		}
	}
}

func TestWithin(t *testing.T) {
	c, err := parseProcCgroup([]byte(hybridCgroup))
	if err != nil {
		t.Fatal(err)
	}
	v2 := func(p string) CgroupDir { return CgroupDir{V2: true, Path: p} }
	v1 := func(h uint32, p string) CgroupDir { return CgroupDir{Hierarchy: h, Path: p} }
	tests := []struct {
		d    CgroupDir
		want bool
	}{
		{v2("/"), true},
		{v2("/tenants"), true},
		{v2("/tenants/a"), true},
		{v2("/tenants/a/b"), true},
		{v2("/tenants/a/b/c"), false},
		{v2("/tenants/a/bc"), false},
		{v2("/tenants/ab"), false},
		{v2("/tenant"), false},
		{v1(8, "/tenants/a"), true},
		{v1(8, "/tenants"), true},
		{v1(8, "/tenants/a/b"), false},
		{v1(2, "/tenants/a"), true},
		{v1(7, "/tenants/a"), false},
		{v1(7, "/"), true},
		{v1(10, "/"), false},
	}
	for _, tt := range tests {
		if got := c.Within(tt.d); got != tt.want {
			t.Errorf("Within(%+v) = %v, want %v", tt.d, got, tt.want)
		}
	}
	if (Cgroups{}).Within(v2("/")) {
		t.Error("no cgroups is within the v2 root")
	}
	if p, ok := c.PathFor(v1(4, "/")); !ok || p != "/process_api/1c8061fa7e6342e04f91c36c7a8bd18f" {
		t.Errorf("PathFor(memory) = %q, %v", p, ok)
	}
}

func TestCgroupsString(t *testing.T) {
	c := Cgroups{V2: "/a", V1: []CgroupV1{{2, "cpu,cpuacct", "/b"}, {8, "pids", "/a"}}}
	if got, want := c.String(), "0::/a 2:cpu,cpuacct:/b 8:pids:/a"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte(hybridCgroup))
	f.Add([]byte("0::/a (deleted)\n"))
	f.Add([]byte("0::\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseProcCgroup(b)
		if err != nil {
			return
		}
		for _, v := range c.V1 {
			if !c.Within(CgroupDir{Hierarchy: v.Hierarchy, Path: "/"}) {
				t.Errorf("%q: not within the root of hierarchy %d", b, v.Hierarchy)
			}
		}
	})
}
