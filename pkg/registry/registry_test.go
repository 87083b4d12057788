package registry_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

func TestParse(t *testing.T) {
	c, err := registry.Parse([]byte(`name: web
id: 42
parent: tenant-a
deliver:
  remote: 127.0.0.1:6000
  netns: /run/netns/web
queue: {memory: 4MiB, spool: 64MiB}
rules:
  - keep: {key: exec}
  - default: drop
`), "web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "web" || c.ID != 42 || c.Parent != "tenant-a" || c.Deliver.Remote != "127.0.0.1:6000" ||
		c.Deliver.NetNS != "/run/netns/web" || c.Queue.Memory != 4<<20 || c.Queue.Spool != 64<<20 || c.Rules == nil {
		t.Errorf("parsed %+v", c)
	}
	c, err = registry.Parse([]byte("name: a\ncgroup: /sys/fs/cgroup/unified/a\ndeliver: {file: /var/log/a.log}\n"), "a.yaml")
	if err != nil || c.HasID() || c.ID != record.Unset || c.Cgroup == "" {
		t.Errorf("cgroup container: %+v, %v", c, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"name: a\nid: 1\n", "f.yaml:1:1: deliver is missing"},
		{"name: a\ndeliver: {file: /a}\n", "f.yaml:1:1: give id (an audit container ID) or cgroup"},
		{"name: a\nid: 1\ncgroup: /x\ndeliver: {file: /a}\n", "f.yaml:3:1: give id or cgroup, not both"},
		{"name: a\nid: -3\ndeliver: {file: /a}\n", `f.yaml:2:5: id "-3" is not an audit container ID`},
		{"name: a\nid: 18446744073709551615\ndeliver: {file: /a}\n", `f.yaml:2:5: id "18446744073709551615" is not an audit container ID`},
		{"name: a b\nid: 1\ndeliver: {file: /a}\n", `f.yaml:1:7: name "a b": use letters`},
		{"name: a\nid: 1\ndeliver: {file: a.log}\n", `f.yaml:3:17: deliver.file "a.log" must be an absolute path`},
		{"name: a\nid: 1\ndeliver: {file: /srv/t/../etc/passwd}\n", `f.yaml:3:17: deliver.file "/srv/t/../etc/passwd" must not contain a ".." element`},
		{"name: a\nid: 1\ndeliver: {file: /srv//t/a.log}\n", `f.yaml:3:17: deliver.file "/srv//t/a.log" must not contain "//"`},
		{"name: a\nid: 1\ndeliver: {file: /srv/t/}\n", `f.yaml:3:17: deliver.file "/srv/t/" must not end in "/"`},
		{"name: a\nid: 1\ndeliver: {file: /srv/./t/a.log}\n", `f.yaml:3:17: deliver.file "/srv/./t/a.log" must not contain a "." element`},
		{"name: a\nid: 1\ndeliver: {file: /srv/t/a.log, beneath: srv}\n", `f.yaml:3:40: deliver.beneath "srv" must be an absolute path`},
		{"name: a\nid: 1\ndeliver: {file: /srv/t/a.log, beneath: /srv/u}\n", `f.yaml:3:10: deliver.file "/srv/t/a.log" is not inside deliver.beneath "/srv/u"`},
		{"name: a\nid: 1\ndeliver: {file: /srv/t, beneath: /srv/t}\n", `f.yaml:3:10: deliver.file "/srv/t" is not inside deliver.beneath "/srv/t"`},
		{"name: a\nid: 1\ndeliver: {remote: h:1, beneath: /srv/t}\n", `f.yaml:3:10: deliver.beneath needs file`},
		{"name: a\nid: 1\ndeliver: {file: /a}\nsocket: /run/x/../y.sock\n", `f.yaml:4:9: socket "/run/x/../y.sock" must not contain a ".." element`},
		{"name: a\nid: 1\ndeliver: {file: /a}\nsocket: run/y.sock\n", `f.yaml:4:9: socket "run/y.sock" must be an absolute path`},
		{"name: ..\nid: 1\ndeliver: {file: /a}\n", `f.yaml:1:7: name ".." is refused: it names a directory`},
		{"name: .\nid: 1\ndeliver: {file: /a}\n", `f.yaml:1:7: name "." is refused: it names a directory`},
		{"name: a\nparent: ..\nid: 1\ndeliver: {file: /a}\n", `f.yaml:2:9: name ".." is refused`},
		{"name: a/b\nid: 1\ndeliver: {file: /a}\n", `f.yaml:1:7: name "a/b": use letters`},
		{"name: \"a\\0b\"\nid: 1\ndeliver: {file: /a}\n", `f.yaml:1:7: name "a\x00b": use letters`},
		{"name: " + strings.Repeat("a", 129) + "\nid: 1\ndeliver: {file: /a}\n", "f.yaml:1:7: name is longer than 128 characters"},
		{"name: a\nid: 1\ndeliver: {remote: nohost}\n", `f.yaml:3:19: deliver.remote "nohost" is not HOST:PORT`},
		{"name: a\nid: 1\ndeliver: {file: /a, remote: h:1}\n", "f.yaml:3:10: deliver has both file and remote"},
		{"name: a\nid: 1\ndeliver: {netns: /run/netns/x, file: /a}\n", "f.yaml:3:10: deliver.netns needs remote"},
		{"name: a\nid: 1\ndeliver: {file: /a}\nqueue: {memory: lots}\n", `f.yaml:4:17: queue.memory: "lots" is not a size`},
		{"name: a\nid: 1\ndeliver: {file: /a}\nqueue: {spool: 1KiB}\n", "f.yaml:4:16: queue.spool must be 0 (no spool) or at least"},
		{"name: a\nid: 1\ndeliver: {file: /a}\ncolour: red\n", `f.yaml:4:1: unknown key "colour"`},
		{"name: a\ncgroup: /sys/fs/cgroup/x\ndeliver: {file: /a}\nkernel_rules: ['-a always,exit -S execve']\n", "f.yaml:4:1: kernel_rules need an id"},
		{"name: a\nid: 1\ndeliver: {file: /a}\nkernel_rules: ['-a always,exit -S nosuch']\n", `f.yaml:4:16: kernel rule "-a always,exit -S nosuch"`},
		{"name: a\nid: 1\ndeliver: {file: /a}\nkernel_rules: ['-a always,exit -S execve -F contid=3']\n", "f.yaml:4:16: a container's kernel rule may not name contid"},
		{"name: a\nid: 1\ndeliver: {file: /a}\nkernel_rules: ['-D']\n", "f.yaml:4:16: a container's kernel rule must be -a, -A or -w"},
		{"name: a\nid: 1\ndeliver: {file: /a}\nrules:\n  - keep: {syscall: nosuchcall}\n", "f.yaml:5:"},
		{"name: a\nname: b\nid: 1\ndeliver: {file: /a}\n", "f.yaml:2:1: name is given twice"},
		{"[1, 2]\n", "f.yaml:1:1: a container file is a mapping"},
		{"name: [\n", "f.yaml: yaml:"},
		{"name: a\nid: 1\nowner: oci/hook\ndeliver: {file: /a}\n", `f.yaml:3:8: name "oci/hook": use letters`},
		{"name: a\nid: 1\ndeliver: {file: /a}\nview: tenant\n", `f.yaml:4:7: view "tenant": give container`},
		{"name: a\nid: 1\ndeliver: {file: /a}\nview: Host\n", `f.yaml:4:7: view "Host": give container`},
		{"name: a\nid: 1\ndeliver: {file: /a}\nview: [host]\n", `f.yaml:4:7: view takes a single value`},
		{"name: a\nid: 1\ndeliver: {file: /a}\nview: host\nview: container\n", `f.yaml:5:1: view is given twice`},
	} {
		_, err := registry.Parse([]byte(tc.src), "f.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
}

func build(t *testing.T, srcs ...string) (*registry.Tree, error) {
	var cs []*registry.Container
	for i, s := range srcs {
		c, err := registry.Parse([]byte(s), filepath.Join("d", string(rune('a'+i))+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return registry.Build(cs)
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		srcs []string
		want string
	}{
		{[]string{"name: a\nid: 1\ndeliver: {file: /a}\n", "name: a\nid: 2\ndeliver: {file: /a}\n"}, `d/b.yaml:1:1: container name "a" is already used by d/a.yaml`},
		{[]string{"name: a\nid: 1\ndeliver: {file: /a}\n", "name: b\nid: 1\ndeliver: {file: /a}\n"}, `d/b.yaml:2:1: container id 1 is already used by "a" (d/a.yaml)`},
		{[]string{"name: a\nid: 1\nparent: nope\ndeliver: {file: /a}\n"}, `d/a.yaml:3:1: parent "nope" is not a registered container`},
		{[]string{"name: a\nid: 1\nparent: b\ndeliver: {file: /a}\n", "name: b\nid: 2\nparent: a\ndeliver: {file: /a}\n"}, "parent chain makes a cycle"},
		{[]string{"name: a\ncgroup: /sys/fs/cgroup/x\ndeliver: {file: /a}\n", "name: b\ncgroup: /sys/fs/cgroup/x\ndeliver: {file: /b}\n"}, `d/b.yaml:2:1: cgroup /sys/fs/cgroup/x is already claimed by container "a" (d/a.yaml)`},
	} {
		_, err := build(t, tc.srcs...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v\nwant %s", err, tc.want)
		}
	}
}

func TestTree(t *testing.T) {
	tree, err := build(t,
		"name: root\nid: 1\ndeliver: {file: /a}\n",
		"name: mid\nid: 2\nparent: root\ndeliver: {file: /a}\n",
		"name: leaf\nid: 3\nparent: mid\ndeliver: {file: /a}\n")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range tree.Containers() {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "root,mid,leaf" {
		t.Errorf("order %v", names)
	}
	if !tree.Within("leaf", "root") || tree.Within("root", "leaf") || tree.ByID(2).Name != "mid" {
		t.Error("Within/ByID wrong")
	}
	if _, err := tree.Without("mid"); err == nil {
		t.Error("removing a container with children succeeded")
	}
	t2, err := tree.Without("leaf")
	if err != nil || t2.ByName("leaf") != nil || tree.ByName("leaf") == nil {
		t.Errorf("Without: %v", err)
	}
}

func TestStoreAndLoadDir(t *testing.T) {
	dir := t.TempDir()
	s, err := registry.OpenStore(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := registry.Parse([]byte("name: a\nid: 1\ndeliver: {file: /a}\n"), "api")
	if err := s.Save(c); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil || len(got) != 1 || got[0].Name != "a" {
		t.Fatalf("Load after Save: %v %v", got, err)
	}
	s.Remove("a")
	if got, _ := s.Load(); len(got) != 0 {
		t.Errorf("Load after Remove: %d containers", len(got))
	}
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("name: a\n"), 0o600)
	if _, err := registry.LoadDir(dir); err == nil || !strings.Contains(err.Error(), "bad.yaml:1:1:") {
		t.Errorf("LoadDir of a bad file: %v", err)
	}
}

// Snapshot's restore puts the stored file back as it was: the old text
// after a Save over it, no file after the Save of a new one.
func TestStoreSnapshot(t *testing.T) {
	s, err := registry.OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	one, _ := registry.Parse([]byte("name: a\nid: 1\ndeliver: {file: /one}\n"), "api")
	two, _ := registry.Parse([]byte("name: a\nid: 1\ndeliver: {file: /two}\n"), "api")
	restore, err := s.Snapshot("a")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(one); err != nil {
		t.Fatal(err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(); len(got) != 0 {
		t.Fatalf("after restoring no file: %d containers stored", len(got))
	}
	if err := s.Save(one); err != nil {
		t.Fatal(err)
	}
	if restore, err = s.Snapshot("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(two); err != nil {
		t.Fatal(err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(); len(got) != 1 || got[0].Deliver.File != "/one" {
		t.Errorf("after restoring: %+v", got)
	}
	if _, err := s.Snapshot("../x"); err == nil {
		t.Error("a snapshot of an invalid name succeeded")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4MiB": 4 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30, "10MB": 10e6, "1048576": 1 << 20, "7B": 7} {
		if got, err := registry.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "4TiB", "1.5MiB"} {
		if _, err := registry.ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

// deliver.file_owner is UID:GID, host ids, with a file target only.
func TestFileOwner(t *testing.T) {
	c, err := registry.Parse([]byte("name: a\nid: 5\ndeliver: {file: /srv/a/audit.log, file_owner: \"100000:100001\"}\n"), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if uid, gid, ok := c.Deliver.FileOwnerIDs(); !ok || uid != 100000 || gid != 100001 {
		t.Errorf("FileOwnerIDs = %d, %d, %v", uid, gid, ok)
	}
	for src, want := range map[string]string{
		"name: a\nid: 5\ndeliver: {file: /srv/a.log, file_owner: root}\n":             `a.yaml:3:41: deliver.file_owner "root" is not UID:GID`,
		"name: a\nid: 5\ndeliver: {file: /srv/a.log, file_owner: \"1:4294967295\"}\n": `deliver.file_owner "1:4294967295" is not UID:GID`,
		"name: a\nid: 5\ndeliver: {remote: \"127.0.0.1:60\", file_owner: \"1:1\"}\n":  "deliver.file_owner needs file: PATH",
		"name: a\nid: 5\ndeliver: {file: /srv/a.log, file_owner: \"-1:5\"}\n":         `deliver.file_owner "-1:5" is not UID:GID`,
	} {
		if _, err := registry.Parse([]byte(src), "a.yaml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", src, err, want)
		}
	}
}

func TestView(t *testing.T) {
	for src, want := range map[string]string{
		"name: a\nid: 1\ndeliver: {file: /a}\n":                  registry.ViewContainer,
		"name: a\nid: 1\ndeliver: {file: /a}\nview: container\n": registry.ViewContainer,
		"name: a\nid: 1\ndeliver: {file: /a}\nview: host\n":      registry.ViewHost,
	} {
		c, err := registry.Parse([]byte(src), "f.yaml")
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if c.View != want || c.HostView() != (want == registry.ViewHost) {
			t.Errorf("%q: view %q, want %q", src, c.View, want)
		}
	}
	// The Spec writes it, and Parse reads it back.
	b, err := (&registry.Spec{Name: "a", ID: "1", File: "/a", View: "host"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := registry.Parse(b, "f.yaml")
	if err != nil || !c.HostView() {
		t.Fatalf("%s: %v, view %v", b, err, c)
	}
}
