package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/auditd-ns/auditd-ns/pkg/control"
)

// scopeDaemon is an auditd-ns in listener mode (it does not touch the
// kernel's audit state) with host containers in dir/containers and its
// host control socket at dir/control.sock.
type scopeDaemon struct {
	t   *testing.T
	dir string
	cmd *exec.Cmd
}

func startScopeDaemon(t *testing.T, dir, extra string, files map[string]string) *scopeDaemon {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "containers"), 0o700))
	for name, src := range files {
		must(t, os.WriteFile(filepath.Join(dir, "containers", name+".yaml"), []byte(src), 0o600))
	}
	p := port(t)
	cfg := filepath.Join(dir, "auditd-ns.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("local_events: no\nlisten: {address: 127.0.0.1:%d}\nlog_file: %s/log/audit.log\n"+
		"containers_dir: %s/containers\nstate_dir: %s/state\ncontrol_socket: %s/control.sock\nlog_level: debug\n%s", p, dir, dir, dir, dir, extra)), 0o600))
	d := &scopeDaemon{t: t, dir: dir, cmd: exec.Command(binary, "run", "--config", cfg)}
	errf, _ := os.Create(filepath.Join(dir, "stderr"))
	d.cmd.Stderr = errf
	watchRaces(t, errf.Name())
	must(t, d.cmd.Start())
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	waitAccepting(t, fmt.Sprintf("127.0.0.1:%d", p))
	waitFor(t, 10*time.Second, func() bool { _, err := ctl(t, dir, "status"); return err == nil }, "the control socket")
	return d
}

// ctlAt runs ctl on the socket sock.
func ctlAt(t *testing.T, sock string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(binary, append([]string{"ctl", "--socket", sock}, args...)...).CombinedOutput()
	return string(out), err
}

// register writes src to a file and registers it through sock.
func (d *scopeDaemon) register(sock, src string, replace bool) (string, error) {
	d.t.Helper()
	f, err := os.CreateTemp(d.dir, "reg-*.yaml")
	must(d.t, err)
	f.WriteString(src)
	f.Close()
	args := []string{"register", f.Name()}
	if replace {
		args = append(args, "--replace")
	}
	return ctlAt(d.t, sock, args...)
}

// refused fails unless a ctl call failed with a message containing each of want.
func refused(t *testing.T, what, out string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted, want refused\n%s", what, out)
		return
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: refused, but the message does not say %q:\n%s", what, w, out)
		}
	}
}

// targets returns every container's target and parent as the host's socket
// lists them: "NAME parent=P target=T".
func (d *scopeDaemon) targets() map[string]string {
	d.t.Helper()
	out, err := ctl(d.t, d.dir, "containers", "--json")
	if err != nil {
		d.t.Fatalf("ctl containers: %v\n%s", err, out)
	}
	var list []struct{ Name, Parent, Target string }
	must(d.t, json.Unmarshal([]byte(out), &list))
	m := map[string]string{}
	for _, c := range list {
		m[c.Name] = "parent=" + c.Parent + " target=" + c.Target
	}
	return m
}

// TestIntegrationScopeTree: a scoped socket's register --replace cannot
// take a sibling's or the host's container, it can unregister its own
// child and not a sibling, and an id it cannot be shown to own is refused
// (stock kernel: no chain can be established, so none is accepted).
func TestIntegrationScopeTree(t *testing.T) {
	dir, err := os.MkdirTemp("", "scope")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	cg := makeCgroup(t, "/sys/fs/cgroup/unified", fmt.Sprintf("auditd-ns-scope-%d", os.Getpid()))
	for _, n := range []string{"tenant", "sibling", "host"} {
		must(t, os.MkdirAll(filepath.Join(dir, n), 0o700))
	}
	cgT, cgS, cgH := makeCgroup(t, cg, "tenant"), makeCgroup(t, cg, "sibling"), makeCgroup(t, cg, "host")
	cgJob := makeCgroup(t, cgT, "job")
	must(t, os.MkdirAll(filepath.Join(dir, "ids"), 0o700))
	d := startScopeDaemon(t, dir, "", map[string]string{
		"tenant":  fmt.Sprintf("name: tenant\ncgroup: %s\ndeliver: {file: %s/tenant/audit.log}\nsocket: %s/tenant/ctl.sock\n", cgT, dir, dir),
		"sibling": fmt.Sprintf("name: sibling\ncgroup: %s\ndeliver: {file: %s/sibling/audit.log}\nsocket: %s/sibling/ctl.sock\n", cgS, dir, dir),
		"host":    fmt.Sprintf("name: host\ncgroup: %s\ndeliver: {file: %s/host/audit.log}\n", cgH, dir),
		"ids":     fmt.Sprintf("name: ids\nid: 7100\ndeliver: {file: %s/ids/audit.log}\nsocket: %s/ids/ctl.sock\n", dir, dir),
	})
	tenant := filepath.Join(dir, "tenant", "ctl.sock")
	before := d.targets()

	job := fmt.Sprintf("name: job\nparent: tenant\ncgroup: %s\ndeliver: {file: %s/tenant/job.log}\n", cgJob, dir)
	if out, err := d.register(tenant, job, false); err != nil {
		t.Fatalf("registering inside the scope: %v\n%s", err, out)
	}
	for _, name := range []string{"sibling", "host"} {
		src := fmt.Sprintf("name: %s\nparent: tenant\ncgroup: %s\ndeliver: {file: %s/tenant/taken.log}\n", name, cgJob+"x", dir)
		out, err := d.register(tenant, src, true)
		refused(t, "register --replace "+name+" through the tenant's socket", out, err, "forbidden", "registered outside")
	}
	out, err := d.register(filepath.Join(dir, "sibling", "ctl.sock"), strings.Replace(job, "parent: tenant", "parent: sibling", 1), true)
	refused(t, "register --replace of the tenant's job through the sibling's socket", out, err, "forbidden")
	after := d.targets()
	for _, name := range []string{"sibling", "host"} {
		if after[name] != before[name] {
			t.Errorf("%s changed: %s, was %s", name, after[name], before[name])
		}
	}

	out, err = ctlAt(t, tenant, "unregister", "sibling")
	refused(t, "unregister of a sibling", out, err, `"sibling" is not inside "tenant"`)
	out, err = ctlAt(t, tenant, "unregister", "host")
	refused(t, "unregister of the host's container", out, err, `"host" is not inside "tenant"`)
	if out, err := ctlAt(t, tenant, "unregister", "job", "--drain-timeout", "1s"); err != nil {
		t.Errorf("unregistering its own child through the scoped socket: %v\n%s", err, out)
	}
	if _, ok := d.targets()["job"]; ok {
		t.Error("job is still registered")
	}

	// An id through a scope: the daemon sees no op=set record of it and
	// this kernel has no audit_containerid, so it cannot be shown to be
	// inside the scope: refused.
	out, err = d.register(filepath.Join(dir, "ids", "ctl.sock"), fmt.Sprintf("name: idjob\nid: 7200\nparent: ids\ndeliver: {file: %s/ids/j.log}\n", dir), false)
	refused(t, "an id through a scope (stock kernel)", out, err, "forbidden", "id 7200", "cannot establish that it is inside")
	if _, ok := d.targets()["idjob"]; ok {
		t.Error("idjob is registered")
	}
}

// counter accepts TCP connections and counts them.
type counter struct {
	ln net.Listener
	n  atomic.Int64
}

func (c *counter) serve() {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.n.Add(1)
		conn.Close()
	}
}

// listenCount listens on addr, in the network namespace ns ("" for this
// one), counting connections until the test ends.
func listenCount(t *testing.T, ns, addr string) *counter {
	t.Helper()
	type res struct {
		ln  net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		if ns != "" {
			// The thread stays in ns and is discarded when this
			// goroutine ends locked.
			runtime.LockOSThread()
			f, err := os.Open(ns)
			if err != nil {
				ch <- res{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- res{nil, err}
				return
			}
		}
		ln, err := net.Listen("tcp", addr)
		ch <- res{ln, err}
	}()
	r := <-ch
	must(t, r.err)
	c := &counter{ln: r.ln}
	go c.serve()
	t.Cleanup(func() { r.ln.Close() })
	return c
}

// TestIntegrationScopeRemote: a scoped socket's remote targets stay in the
// scope's network namespace and in the admin's scoped_remote_allow, and a
// refused one is never dialled; quotas bound a scope by count and bytes.
func TestIntegrationScopeRemote(t *testing.T) {
	dir, err := os.MkdirTemp("", "scope")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	id := fmt.Sprint(os.Getpid())
	ns := netns(t, "ans-scope-"+id)
	cg := makeCgroup(t, "/sys/fs/cgroup/unified", "auditd-ns-scoperem-"+id)
	cgN, cgH, cgQ := makeCgroup(t, cg, "netscope"), makeCgroup(t, cg, "hostnet"), makeCgroup(t, cg, "quota")
	for _, n := range []string{"net", "hn", "q"} {
		must(t, os.MkdirAll(filepath.Join(dir, n), 0o700))
	}
	allowed, denied := port(t), port(t)
	hostAllowed := listenCount(t, "", fmt.Sprintf("127.0.0.1:%d", allowed))
	hostDenied := listenCount(t, "", fmt.Sprintf("127.0.0.1:%d", denied))
	nsAllowed := listenCount(t, ns, fmt.Sprintf("127.0.0.1:%d", allowed))
	nsDenied := listenCount(t, ns, fmt.Sprintf("127.0.0.1:%d", denied))
	scopePort := port(t) // nothing listens: the scopes' own targets
	d := startScopeDaemon(t, dir, fmt.Sprintf("scoped_remote_allow: [127.0.0.1/32:%d]\nscoped_quota_memory: 3MiB\n", allowed), map[string]string{
		"netscope": fmt.Sprintf("name: netscope\ncgroup: %s\ndeliver: {remote: \"127.0.0.1:%d\", netns: %s}\nsocket: %s/net/ctl.sock\n", cgN, scopePort, ns, dir),
		"hostnet":  fmt.Sprintf("name: hostnet\ncgroup: %s\ndeliver: {remote: \"127.0.0.1:%d\"}\nsocket: %s/hn/ctl.sock\n", cgH, scopePort, dir),
		"quota":    fmt.Sprintf("name: quota\ncgroup: %s\ndeliver: {file: %s/q/audit.log}\nqueue: {memory: 2MiB}\nsocket: %s/q/ctl.sock\nquota: {containers: 3}\n", cgQ, dir, dir),
	})
	netSock, hnSock := filepath.Join(dir, "net", "ctl.sock"), filepath.Join(dir, "hn", "ctl.sock")
	child := func(name, parent, cgParent, remote, netns string) string {
		src := fmt.Sprintf("name: %s\nparent: %s\ncgroup: %s/%s\nqueue: {memory: 1MiB}\ndeliver: {remote: \"%s\"", name, parent, cgParent, name, remote)
		if netns != "" {
			src += ", netns: " + netns
		}
		return src + "}\n"
	}
	out, err := d.register(hnSock, child("h1", "hostnet", cgH, fmt.Sprintf("127.0.0.1:%d", allowed), ""), false)
	refused(t, "a remote child of a scope without a netns", out, err, "forbidden", "scoped_remote_host_netns")
	out, err = d.register(netSock, child("n1", "netscope", cgN, fmt.Sprintf("127.0.0.1:%d", denied), ""), false)
	refused(t, "a remote child in the host's netns of a scope with one", out, err, "forbidden", "is not the network namespace of")
	out, err = d.register(netSock, child("n2", "netscope", cgN, fmt.Sprintf("127.0.0.1:%d", denied), "/proc/1/ns/net"), false)
	refused(t, "a remote child in another netns", out, err, "forbidden", "is not the network namespace of")
	out, err = d.register(netSock, child("n3", "netscope", cgN, fmt.Sprintf("127.0.0.1:%d", denied), ns), false)
	refused(t, "a remote child outside scoped_remote_allow", out, err, "forbidden", "scoped_remote_allow")
	out, err = d.register(netSock, child("n4", "netscope", cgN, fmt.Sprintf("localhost:%d", allowed), ns), false)
	refused(t, "a remote child named by host name", out, err, "forbidden", "by IP address")

	// The allowed one is dialled, in the scope's namespace: the listeners
	// do see a dial when there is one.
	if out, err := d.register(netSock, child("ok", "netscope", cgN, fmt.Sprintf("127.0.0.1:%d", allowed), ns), false); err != nil {
		t.Fatalf("an allowed remote child: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, func() bool { return nsAllowed.n.Load() > 0 }, "the allowed child's connection in the scope's netns")
	time.Sleep(time.Second) // a refused target would have been dialled by now
	for name, c := range map[string]*counter{"host 127.0.0.1:allowed": hostAllowed, "host 127.0.0.1:denied": hostDenied, "netns 127.0.0.1:denied": nsDenied} {
		if n := c.n.Load(); n != 0 {
			t.Errorf("%s: %d connections from the daemon, want none", name, n)
		}
	}

	// Quotas: quota (queue memory 2MiB) may hold 3 containers (its file)
	// and 3MiB of queue memory (the config's default).
	qSock := filepath.Join(dir, "q", "ctl.sock")
	qchild := func(name, mem string) string {
		must(t, os.MkdirAll(filepath.Join(cgQ, name), 0o755))
		t.Cleanup(func() { os.Remove(filepath.Join(cgQ, name)) })
		return fmt.Sprintf("name: %s\nparent: quota\ncgroup: %s/%s\nqueue: {memory: %s}\ndeliver: {file: %s/q/%s.log}\n", name, cgQ, name, mem, dir, name)
	}
	for _, n := range []string{"q1", "q2"} {
		if out, err := d.register(qSock, qchild(n, "1MiB"), false); err != nil {
			t.Fatalf("registering %s within the quota: %v\n%s", n, err, out)
		}
	}
	out, err = d.register(qSock, qchild("q3", "2MiB"), false)
	refused(t, "over the memory quota", out, err, "forbidden", `the quota of "quota" is exceeded`, "quota.memory is 3145728")
	if out, err := d.register(qSock, qchild("q3", "512KiB"), false); err != nil {
		t.Fatalf("registering q3 within the quota: %v\n%s", err, out)
	}
	out, err = d.register(qSock, qchild("q4", "1KiB"), false)
	refused(t, "over the count quota", out, err, "forbidden", "4 containers inside it, quota.containers is 3")
	if _, ok := d.targets()["q4"]; ok {
		t.Error("q4 is registered")
	}
}

// TestIntegrationScopeReplaceRace: while the host registers and
// unregisters a container of its own, a scoped socket keeps trying to
// register --replace that name; it never gets it while the host holds it.
func TestIntegrationScopeReplaceRace(t *testing.T) {
	dir, err := os.MkdirTemp("", "scope")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	cg := makeCgroup(t, "/sys/fs/cgroup/unified", fmt.Sprintf("auditd-ns-race-%d", os.Getpid()))
	cgT := makeCgroup(t, cg, "tenant")
	must(t, os.MkdirAll(filepath.Join(dir, "tenant"), 0o700))
	must(t, os.MkdirAll(filepath.Join(dir, "host"), 0o700))
	startScopeDaemon(t, dir, "", map[string]string{
		"tenant": fmt.Sprintf("name: tenant\ncgroup: %s\ndeliver: {file: %s/tenant/audit.log}\nsocket: %s/tenant/ctl.sock\n", cgT, dir, dir),
	})
	ctx := context.Background()
	host, err := control.Dial(ctx, filepath.Join(dir, "control.sock"))
	must(t, err)
	defer host.Close()
	tenant, err := control.Dial(ctx, filepath.Join(dir, "tenant", "ctl.sock"))
	must(t, err)
	defer tenant.Close()
	hostSrc := []byte(fmt.Sprintf("name: victim\ncgroup: %s/victim\ndeliver: {file: %s/host/victim.log}\n", cg, dir))
	takeSrc := []byte(fmt.Sprintf("name: victim\nparent: tenant\ncgroup: %s/victim\ndeliver: {file: %s/tenant/victim.log}\n", cgT, dir))
	done := make(chan struct{})
	var taken, stolen atomic.Int64
	var held atomic.Bool       // the host registered victim and has not unregistered it
	var takebacks atomic.Int64 // the host unregistered the tenant's victim
	go func() {
		defer close(done)
		for range 1500 {
			tb := takebacks.Load()
			if info, err := tenant.Register(ctx, "take.yaml", takeSrc, true); err == nil && info.Parent == "tenant" {
				// Applied while the host held the name, unless the
				// host took it back meanwhile (a late answer).
				if held.Load() && takebacks.Load() == tb {
					stolen.Add(1)
				}
				// Registered while the name was free: give it back.
				taken.Add(1)
				tenant.Unregister(ctx, "victim", control.ModeSpool, time.Millisecond)
			}
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
			t.Logf("%d host registrations, %d scoped registrations of the free name", i, taken.Load())
			if n := stolen.Load(); n > 0 {
				t.Errorf("the scoped socket replaced the host's container %d times", n)
			}
			return
		default:
		}
		if _, err := host.Register(ctx, "victim.yaml", hostSrc, false); err != nil {
			// The tenant holds the name: the host takes it back.
			takebacks.Add(1)
			host.Unregister(ctx, "victim", control.ModeSpool, time.Millisecond)
			continue
		}
		held.Store(true)
		time.Sleep(time.Millisecond) // a scoped replace in flight lands now
		cs, err := host.Containers(ctx)
		must(t, err)
		for _, c := range cs {
			if c.Name == "victim" && c.Parent != "" {
				stolen.Add(1)
			}
		}
		held.Store(false)
		host.Unregister(ctx, "victim", control.ModeSpool, time.Millisecond)
	}
}
