package test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// hostTree is a directory standing for the host's files, which a scoped
// orchestrator must not reach: it snapshots every entry (content, mtime,
// inode) so that any change, creation or removal is seen.
type hostTree struct {
	dir  string
	snap map[string]string
}

func newHostTree(t *testing.T, dir string) *hostTree {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	old := time.Now().Add(-time.Hour)
	// No final newline: opening it as a log would cut the "torn" line.
	for _, n := range []string{"etc/passwd", "passwd", "c3.log", "c3.log.1", "c3.log.2"} {
		p := filepath.Join(dir, n)
		must(t, os.WriteFile(p, []byte("host secret, no newline"), 0o644))
		must(t, os.Chtimes(p, old, old))
	}
	// A stale socket of the host's: nobody listens on it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "host.sock"), Net: "unix"})
	must(t, err)
	ln.SetUnlinkOnClose(false)
	ln.Close()
	h := &hostTree{dir: dir}
	h.snap = h.take(t)
	return h
}

func (h *hostTree) take(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.Walk(h.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		b, _ := os.ReadFile(p)
		m[p] = fmt.Sprintf("ino %d mtime %v mode %v %q", st.Ino, fi.ModTime().UnixNano(), fi.Mode(), b)
		return nil
	})
	return m
}

// unchanged fails the test if anything in the host's tree changed.
func (h *hostTree) unchanged(t *testing.T, after string) {
	t.Helper()
	now := h.take(t)
	for p, was := range h.snap {
		if now[p] != was {
			t.Errorf("after %s, host file %s changed:\n was %s\n now %s", after, p, was, now[p])
		}
	}
	for p, is := range now {
		if _, ok := h.snap[p]; !ok {
			t.Errorf("after %s, %s was created in the host's tree: %s", after, p, is)
		}
	}
}

// TestIntegrationScopedPathsStayInside: a scoped orchestrator, through the
// real scoped control socket of a real daemon, tries to make the root
// daemon write, rotate over, create or remove files outside the directory
// it was given (with symlinks it made there, "..", a directory swapped
// for a symlink after registration, and container names that are
// directories). Every attempt is refused with a clear error, or (the
// swap) lands in the directory that was checked, and the host's files
// are unchanged.
func TestIntegrationScopedPathsStayInside(t *testing.T) {
	ctlk := testkernel.Take(t)
	dir := t.TempDir()
	id := fmt.Sprint(os.Getpid())
	cgS := makeCgroup(t, "/sys/fs/cgroup/unified", "auditd-ns-paths-"+id)
	cgC3 := makeCgroup(t, cgS, "c3")
	area := filepath.Join(dir, "tenant") // the scope's directory
	run := filepath.Join(dir, "run")     // the scope's socket directory
	host := newHostTree(t, filepath.Join(dir, "host"))
	must(t, os.MkdirAll(area, 0o755))
	must(t, os.MkdirAll(run, 0o755))
	prog := privateTrue(t, dir)
	scopeSock := filepath.Join(run, "scope.sock")
	containerFile(t, dir, "scope", fmt.Sprintf("name: scope\ncgroup: %s\ndeliver: {file: %s/scope.log}\nqueue: {spool: 1MiB}\nsocket: %s\n", cgS, area, scopeSock))
	writeConfig(t, dir, fmt.Sprintf("containers_dir: %s/containers\nstate_dir: %s/state\nmax_log_file: 1\nnum_logs: 3\n", dir, dir),
		"-D\n"+execRule(prog, testKey("exec")))
	d := start(t, ctlk, dir)

	// What the tenant plants in the directories it was given.
	must(t, os.Symlink(host.dir, filepath.Join(area, "link")))
	must(t, os.Symlink(filepath.Join(host.dir, "etc"), filepath.Join(area, "etclink")))
	must(t, os.Symlink(filepath.Join(host.dir, "passwd"), filepath.Join(area, "passwd")))
	must(t, os.Symlink(host.dir, filepath.Join(run, "link")))

	n := 0
	register := func(name, body string) (string, error) {
		n++
		f := filepath.Join(dir, fmt.Sprintf("req-%d.yaml", n))
		must(t, os.WriteFile(f, []byte(body), 0o600))
		out, err := exec.Command(binary, "ctl", "--socket", scopeSock, "register", f).CombinedOutput()
		return string(out), err
	}
	child := func(name, extra string) string {
		return fmt.Sprintf("name: %s\nparent: scope\ncgroup: %s/%s\n%s", name, cgS, name, extra)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"file through a symlinked directory", child("x1", "deliver: {file: "+area+"/link/etc/passwd}\n"), "symlink"},
		{"file that is a symlink", child("x2", "deliver: {file: "+area+"/passwd}\n"), "symlink"},
		{"file with .. after a symlink", child("x3", "deliver: {file: "+area+"/etclink/../passwd}\n"), `deliver.file "` + area + `/etclink/../passwd" must not contain a ".." element`},
		{"file with .. out of the area", child("x4", "deliver: {file: "+area+"/../host/passwd}\n"), `must not contain a ".." element`},
		{"file with //", child("x5", "deliver: {file: "+area+"//link/passwd}\n"), `must not contain "//"`},
		{"file with a beneath of its own", child("x6", "deliver: {file: "+area+"/link/etc/passwd, beneath: "+dir+"}\n"), "symlink"},
		{"socket through a symlinked directory", child("x7", "deliver: {file: "+area+"/c2.log}\nsocket: "+run+"/link/evil.sock\n"), "symlink"},
		{"socket over a host socket", child("x8", "deliver: {file: "+area+"/c2.log}\nsocket: "+run+"/link/host.sock\n"), "symlink"},
		{"socket with ..", child("x9", "deliver: {file: "+area+"/c2.log}\nsocket: "+run+"/link/../host.sock\n"), `must not contain a ".." element`},
		{"name ..", "name: ..\nparent: scope\ncgroup: " + cgS + "/x\ndeliver: {file: " + area + "/x.log}\nqueue: {memory: 1MiB, spool: 1MiB}\n", `name ".." is refused`},
		{"name .", "name: .\nparent: scope\ncgroup: " + cgS + "/x\ndeliver: {file: " + area + "/x.log}\nqueue: {memory: 1MiB, spool: 1MiB}\n", `name "." is refused`},
	} {
		out, err := register(tc.name, tc.body)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: got (%v), want refused with %q:\n%s", tc.name, err, tc.want, out)
		}
		host.unchanged(t, tc.name)
	}
	// Nothing of a refused container was made: no spool in the state
	// directory itself ("..") nor in state/queues (".").
	for sub, want := range map[string]string{"state": "containers queues", "state/queues": "scope", "state/containers": ""} {
		var got []string
		es, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range es {
			got = append(got, e.Name())
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s holds %q, want %q", sub, got, want)
		}
	}

	// A directory of the area swapped for a symlink after registration:
	// rotation stays in the directory that was opened.
	sub := filepath.Join(area, "c3")
	must(t, os.MkdirAll(sub, 0o755))
	big := bytes.Repeat([]byte(strings.Repeat("x", 99)+"\n"), (1<<20)/100+1)
	must(t, os.WriteFile(filepath.Join(sub, "c3.log"), big, 0o644))
	if out, err := register("c3", child("c3", "deliver: {file: "+sub+"/c3.log}\n")); err != nil {
		t.Fatalf("registering c3: %v\n%s", err, out)
	}
	must(t, os.Rename(sub, sub+".old"))
	must(t, os.Symlink(host.dir, sub))
	runIn(t, cgC3, prog, 1)
	waitFor(t, 15*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(sub+".old", "c3.log.1"))
		return err == nil || len(host.take(t)) != len(host.snap) || host.take(t)[filepath.Join(host.dir, "c3.log")] != host.snap[filepath.Join(host.dir, "c3.log")]
	}, "c3's file target to rotate")
	host.unchanged(t, "rotating c3's file target")
	if b, err := os.ReadFile(filepath.Join(sub+".old", "c3.log.1")); err != nil || !bytes.HasPrefix(b, big[:100]) {
		t.Errorf("c3's rotated copy is not in its own directory: %v", err)
	}

	// The scope keeps working after all that.
	if out, err := register("c4", child("c4", "deliver: {file: "+area+"/c4/c4.log}\n")); err != nil {
		t.Errorf("registering a container inside the area: %v\n%s", err, out)
	}
	d.stop()
	host.unchanged(t, "the daemon stopped")
}
