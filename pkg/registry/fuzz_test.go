package registry_test

import (
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte("name: web\nid: 42\nparent: a\ndeliver: {remote: 127.0.0.1:60, netns: /run/netns/w}\nqueue: {memory: 4MiB, spool: 1MiB}\nrules:\n  - keep: {key: exec}\n  - default: drop\n"))
	f.Add([]byte("name: a\ncgroup: /sys/fs/cgroup/unified/a\ndeliver: {file: /var/log/a.log}\n"))
	f.Add([]byte("name: a\nid: 1\ndeliver: {file: /a}\nkernel_rules: ['-a always,exit -S execve -k x']\n"))
	f.Add([]byte("{{{{"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := registry.Parse(src, "fuzz.yaml")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if c.Name == "" || (c.Deliver.File == "" && c.Deliver.Remote == "") {
			t.Fatalf("accepted an incomplete container: %+v", c)
		}
		registry.Build([]*registry.Container{c})
	})
}
