package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestIntegrationUnsavedChangeRefused: a registration, a replacement, an
// unregistration or a rules push that the daemon cannot save in its state
// directory is refused through the control socket, with a message naming
// the file, and changes nothing that runs; the daemon keeps running. Listener
// mode: no kernel needed.
func TestIntegrationUnsavedChangeRefused(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "containers"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "containers", "admin.yaml"), []byte(fmt.Sprintf("name: admin\nid: 43\ndeliver: {file: %s/admin.log}\n", dir)), 0o600))
	d, cfg := runControlDaemon(t, dir, "containers_dir: "+dir+"/containers\n")

	// Blocked, the store's directory is a read-only bind mount of itself:
	// it reads, but nothing in it changes, root's writes included.
	store := filepath.Join(dir, "state/containers")
	block := func() {
		t.Helper()
		must(t, unix.Mount(store, store, "", unix.MS_BIND, ""))
		t.Cleanup(func() { unix.Unmount(store, unix.MNT_DETACH) })
		must(t, unix.Mount("", store, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""))
	}
	unblock := func() { t.Helper(); must(t, unix.Unmount(store, 0)) }
	file := func(name, target string) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(fmt.Sprintf("name: web\nid: 42\ndeliver: {file: %s/%s/audit.log}\n", dir, target)), 0o600))
		return p
	}
	running := func() string {
		out, err := ctl(t, dir, "containers")
		if err != nil {
			t.Fatalf("ctl containers (is the daemon still running?): %v\n%s", err, out)
		}
		return out
	}
	refused := func(what string, args ...string) {
		t.Helper()
		out, err := ctl(t, dir, args...)
		if err == nil {
			t.Errorf("%s that could not be saved succeeded:\n%s", what, out)
		} else if !strings.Contains(out, filepath.Join(store, "web.yaml")) {
			t.Errorf("%s that could not be saved: the refusal does not name the file:\n%s", what, out)
		}
	}

	// A new registration, its file unwritable, then unreadable (a
	// directory with something in it).
	block()
	refused("a registration", "register", file("web.yaml", "a"))
	unblock()
	stored := filepath.Join(store, "web.yaml")
	must(t, os.MkdirAll(filepath.Join(stored, "x"), 0o700))
	refused("a registration", "register", file("web.yaml", "a"))
	must(t, os.RemoveAll(stored))
	if out := running(); strings.Contains(out, "web") {
		t.Errorf("a registration that could not be saved runs:\n%s", out)
	}
	if out, err := ctl(t, dir, "register", file("web.yaml", "a")); err != nil {
		t.Fatalf("ctl register: %v\n%s", err, out)
	}

	// A replacement: the first registration keeps running.
	block()
	refused("a replacement", "register", "--replace", file("web2.yaml", "b"))
	if out := running(); !strings.Contains(out, dir+"/a/audit.log") || strings.Contains(out, dir+"/b/audit.log") {
		t.Errorf("after a replacement that could not be saved, web does not run its saved registration:\n%s", out)
	}

	// A rules push.
	rules := filepath.Join(dir, "rules.yaml")
	must(t, os.WriteFile(rules, []byte("- keep: {key: a}\n- keep: {key: b}\n"), 0o600))
	refused("a rules push", "rules", "push", "web", rules)
	if out, err := ctl(t, dir, "containers", "--json"); err != nil || !strings.Contains(out, `"rules": 0`) && strings.Contains(out, `"rules"`) {
		t.Errorf("after a push that could not be saved, web runs new rules: %v\n%s", err, out)
	}

	// An unregistration: web keeps running, and still would after a
	// restart.
	refused("an unregistration", "unregister", "--spool", "web")
	refused("a drained unregistration", "unregister", "web")
	if out := running(); !strings.Contains(out, "web") {
		t.Errorf("an unregistration that could not be saved stopped web:\n%s", out)
	}
	unblock()
	if out, err := ctl(t, dir, "unregister", "--spool", "web"); err != nil {
		t.Fatalf("ctl unregister: %v\n%s", err, out)
	}
	if out := running(); strings.Contains(out, "web") {
		t.Errorf("web still runs after its unregistration:\n%s", out)
	}

	// A container of containers_dir is that file's: one registered over
	// it at run time would be saved beside it, and the next start would
	// refuse the two. The registration is refused, naming the file.
	conf := filepath.Join(dir, "containers", "admin.yaml")
	over := filepath.Join(dir, "over.yaml")
	must(t, os.WriteFile(over, []byte(fmt.Sprintf("name: admin\nid: 43\ndeliver: {file: %s/over.log}\n", dir)), 0o600))
	if out, err := ctl(t, dir, "register", "--replace", over); err == nil || !strings.Contains(out, conf) {
		t.Errorf("replacing a container of containers_dir: %v\n%s", err, out)
	}
	if out, err := ctl(t, dir, "unregister", "--spool", "admin"); err != nil {
		t.Fatalf("ctl unregister admin: %v\n%s", err, out)
	}
	if out, err := ctl(t, dir, "register", over); err == nil || !strings.Contains(out, conf) {
		t.Errorf("registering the name of a container of containers_dir: %v\n%s", err, out)
	}
	// The daemon starts again with what it saved.
	d.Process.Kill()
	d.Wait()
	again := exec.Command(binary, "run", "--config", cfg)
	out, err := os.Create(filepath.Join(dir, "stderr-again"))
	must(t, err)
	again.Stderr = out
	must(t, again.Start())
	exited := make(chan error, 1)
	go func() { exited <- again.Wait() }()
	t.Cleanup(func() { again.Process.Kill(); <-exited })
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(out.Name())
			t.Fatalf("the daemon did not start again with what it saved: %v\n%s", err, b)
		default:
		}
		if _, err := ctl(t, dir, "status"); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the daemon did not answer 10s after it started again")
		}
	}
}
