package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// TestIntegrationOCIHookDaemon runs a busybox container with the real runc,
// its hooks calling `auditd-ns oci-hook` against the real daemon: the
// container is registered at createRuntime, its processes' events reach its
// file target (and the host log), and it is unregistered at poststop.
func TestIntegrationOCIHookDaemon(t *testing.T) {
	needTools(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("needs runc (Debian package runc)")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs a static busybox (Debian package busybox-static)")
	}
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	must(t, os.MkdirAll(filepath.Join(bundle, "rootfs", "bin"), 0o755))
	bb := filepath.Join(bundle, "rootfs", "bin", "busybox")
	if out, err := exec.Command("cp", busybox, bb).CombinedOutput(); err != nil {
		t.Fatalf("copying busybox: %v %s", err, out)
	}
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v %s", err, out)
	}
	sock := filepath.Join(dir, "control.sock")
	target := filepath.Join(dir, "tenant", "audit.log")
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	must(t, err)
	var spec map[string]any
	must(t, json.Unmarshal(raw, &spec))
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	// Two execve of busybox in the container: runc's start of env, then
	// env's exec of true.
	proc["args"] = []string{"/bin/busybox", "env", "/bin/busybox", "true"}
	hook := func(stage string) []any {
		return []any{map[string]any{"path": binary, "args": []string{"auditd-ns", "oci-hook", "--socket", sock, stage}, "timeout": 20}}
	}
	spec["hooks"] = map[string]any{"createRuntime": hook("createRuntime"), "poststop": hook("poststop")}
	spec["annotations"] = map[string]string{
		"org.auditd-ns.deliver.file": target,
		"org.auditd-ns.required":     "true",
	}
	raw, _ = json.MarshalIndent(spec, "", " ")
	must(t, os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o644))

	key := testKey("oci")
	writeConfig(t, dir, fmt.Sprintf("state_dir: %s/state\n", dir), "-D\n"+execRule(bb, key))
	d := start(t, ctl, dir)
	busyHost(t)
	id := fmt.Sprintf("auditd-ns-oci-%d", os.Getpid())
	out, err := exec.Command(runc, "run", "--bundle", bundle, id).CombinedOutput()
	exec.Command(runc, "delete", "--force", id).Run()
	if err != nil {
		t.Fatalf("runc run: %v\n%s\ndaemon:\n%s", err, out, d.stderrText())
	}
	time.Sleep(300 * time.Millisecond)
	d.stop()
	if got := ausearchCount(t, d.log, "-k", key); got != 2 {
		t.Errorf("host log: %d oci events, want 2", got)
	}
	if got := ausearchCount(t, target, "-k", key); got != 2 {
		t.Errorf("the container's target: %d oci events, want 2\ndaemon:\n%s", got, d.stderrText())
	}
	for _, want := range []string{"registered container", "unregistered container"} {
		if !strings.Contains(d.stderrText(), want) {
			t.Errorf("the daemon's log lacks %q", want)
		}
	}
}
