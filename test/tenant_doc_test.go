package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// TestIntegrationTenantDoc runs the worked example of docs/tenant.md, its
// two blocks as they are written, against the real daemon, with the real
// auditd as the tenant: only the values of its first five lines change (a
// name, a network namespace, a cgroup, a directory and a port of this
// test's), and /sys/fs/cgroup becomes this host's cgroup2 mount. The
// tenant's ausearch finds the event, with the host pid the process printed.
func TestIntegrationTenantDoc(t *testing.T) {
	needTools(t)
	for _, tool := range []string{"auditd", "ausearch", "auditctl", "ss", "unshare", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian packages auditd, iproute2, util-linux)", tool)
		}
	}
	src, err := os.ReadFile("../docs/tenant.md")
	must(t, err)
	blocks := regexp.MustCompile("(?s)<!-- tenant-example -->\n```sh\n(.*?)```").FindAllStringSubmatch(string(src), -1)
	if len(blocks) != 2 {
		t.Fatalf("docs/tenant.md has %d tenant-example blocks, want 2", len(blocks))
	}
	script := blocks[0][1] + "\n" + blocks[1][1]

	ctl := testkernel.Take(t)
	dir := t.TempDir()
	writeConfig(t, dir, fmt.Sprintf("state_dir: %s/state\n", dir), "-D\n")
	d := start(t, ctl, dir)
	busyHost(t)

	id := fmt.Sprintf("ans-doc-%d", os.Getpid())
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup2"))
	if err != nil || len(mounts) == 0 {
		t.Skipf("needs a cgroup2 mount (%v)", err)
	}
	cg2 := mounts[0].Mountpoint
	tdir := filepath.Join(dir, "tenant")
	vars := map[string]string{"NAME": id, "NETNS": id, "CGROUP": "/sys/fs/cgroup/" + id, "DIR": tdir, "PORT": fmt.Sprint(port(t))}
	for k, v := range vars {
		re := regexp.MustCompile(`(?m)^` + k + `=\S+`)
		if !re.MatchString(script) {
			t.Fatalf("the example sets no %s", k)
		}
		script = re.ReplaceAllLiteralString(script, k+"="+v)
	}
	script = strings.ReplaceAll(script, "/sys/fs/cgroup/", cg2+"/")
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", id).Run()
		os.Remove(filepath.Join(cg2, id))
		exec.Command("auditctl", "-d", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "exe=/usr/bin/id", "-k", id+"-id").Run()
	})

	// The binary as `auditd-ns` on PATH, the daemon's socket as the
	// default.
	bin := filepath.Join(dir, "bin")
	must(t, os.MkdirAll(bin, 0o755))
	must(t, os.Symlink(binary, filepath.Join(bin, "auditd-ns")))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "AUDITD_NS_SOCKET="+filepath.Join(dir, "control.sock"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the example failed: %v\n%s\ndaemon:\n%s", err, out, d.stderrText())
	}
	m := regexp.MustCompile(`the process: pid (\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("the example printed no pid:\n%s", out)
	}
	for _, want := range []string{"type=EXECVE", "a0=/usr/bin/id", "type=SYSCALL", " pid=" + m[1] + " ", "exe=/usr/bin/id", "key=" + id + "-id"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the tenant's ausearch output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(d.stderrText(), "unregistered container") {
		t.Errorf("the example did not unregister the container:\n%s", d.stderrText())
	}
	d.stop()
}
