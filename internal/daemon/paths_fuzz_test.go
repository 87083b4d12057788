package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/deliver"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// scopeWorld is a daemon (no kernel) with one container, "scope", whose
// file target is in area and whose scoped socket is in run, served for
// real; host stands for the host's files.
type scopeWorld struct {
	root, area, run, host, state string
	d                            *Daemon
	client                       *control.Client
	n                            int
}

func newScopeWorld(tb testing.TB) *scopeWorld {
	tb.Helper()
	root, err := os.MkdirTemp("", "fz")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(root) })
	w := &scopeWorld{root: root, area: root + "/area", run: root + "/run", host: root + "/host", state: root + "/state"}
	for _, dir := range []string{w.area, w.run, w.host + "/etc"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for _, f := range []string{"passwd", "etc/passwd", "x.log", "x.log.1"} {
		os.WriteFile(filepath.Join(w.host, f), []byte("host secret, no newline"), 0o644)
	}
	cfg := config.Default()
	cfg.StateDir = w.state
	cfg.Log.MaxLogFile = 4096 // a few copies rotate a file target
	d := newTestDaemon(tb, cfg)
	if err := d.conts.Load(d.life, nil); err != nil {
		tb.Fatal(err)
	}
	w.d = d
	c, err := registry.Parse([]byte(fmt.Sprintf("name: scope\ncgroup: /sys/fs/cgroup/fz-scope\ndeliver: {file: %s/scope.log}\nqueue: {spool: 1MiB}\nsocket: %s/s.sock\n", w.area, w.run)), "scope.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := (backend{d}).Register(context.Background(), c, control.RegisterOptions{}); err != nil {
		tb.Fatal(err)
	}
	if w.client, err = control.Dial(context.Background(), w.run+"/s.sock"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.client.Close() })
	return w
}

// outside describes every file outside the areas the scope may use (its
// file directory, its socket directory, its queues and the store).
func (w *scopeWorld) outside() map[string]string {
	m := map[string]string{}
	filepath.Walk(w.root, func(p string, fi os.FileInfo, err error) error {
		switch {
		case err != nil:
			return nil
		case p == w.area || p == w.run:
			return filepath.SkipDir
		case p == w.state+"/queues" || p == w.state+"/containers":
			return filepath.SkipDir
		}
		st := fi.Sys().(*syscall.Stat_t)
		b, _ := os.ReadFile(p)
		if fi.IsDir() {
			b = nil // a directory's mtime says enough
		}
		m[p] = fmt.Sprintf("ino %d mtime %d mode %v %q", st.Ino, fi.ModTime().UnixNano(), fi.Mode(), b)
		return nil
	})
	return m
}

// plant makes what a tenant can make in the scope's directory: each line
// "NAME>TARGET" is a symlink area/NAME to TARGET ($HOST, $AREA, $ROOT
// expand), each line "NAME/" a directory.
func (w *scopeWorld) plant(spec string) {
	r := strings.NewReplacer("$HOST", w.host, "$AREA", w.area, "$ROOT", w.root)
	for _, line := range strings.Split(spec, "\n") {
		name, target, isLink := strings.Cut(line, ">")
		name = strings.TrimSuffix(name, "/")
		if !filepath.IsLocal(name) || len(name) > 200 {
			continue
		}
		p := filepath.Join(w.area, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if isLink {
			os.Symlink(r.Replace(target), p)
		} else {
			os.Mkdir(p, 0o755)
		}
	}
}

// reset empties the scope's directory but for its own file.
func (w *scopeWorld) reset() {
	es, _ := os.ReadDir(w.area)
	for _, e := range es {
		if e.Name() != "scope.log" {
			os.RemoveAll(filepath.Join(w.area, e.Name()))
		}
	}
}

// FuzzScopedFilePaths registers containers through a real scoped socket
// with random file, socket and container names after planting random
// symlinks and directories in the scope's directory, then delivers and
// rotates, and checks that nothing outside the scope's directories was
// created, changed or removed.
func FuzzScopedFilePaths(f *testing.F) {
	for _, seed := range [][4]string{
		{"", "c/a.log", "", "c"},
		{"link>$HOST", "link/passwd", "", "c"},
		{"link>$HOST", "link/etc/passwd", "", "c"},
		{"link>$HOST/etc", "link/../passwd", "", "c"},
		{"passwd>$HOST/passwd", "passwd", "", "c"},
		{"d/\nd/up>../..", "d/up/host/passwd", "", "c"},
		{"", "../host/x.log", "", "c"},
		{"", "a//b.log", "", "c"},
		{"", "a/", "", "c"},
		{"", strings.Repeat("n", 300) + "/a.log", "", "c"},
		{"", strings.Repeat("n", 255), "", "c"},
		{"", "ok.log", "", ".."},
		{"", "ok.log", "", "."},
		{"", "ok.log", "link/s.sock", "c"},
		{"x.log>$HOST/x.log\nx.log.1>$HOST/x.log.1", "x.log", "", "c"},
		{"self>.", "self/self/a.log", "", "c"},
		{"abs>/", "abs" + "$HOST/passwd", "", "c"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	w := newScopeWorld(f)
	before := w.outside()
	f.Fuzz(func(t *testing.T, plant, file, sock, name string) {
		w.n++
		w.plant(plant)
		defer w.reset()
		os.Symlink(w.host, w.run+"/link") // the socket directory has its plant too
		defer os.Remove(w.run + "/link")
		src := fmt.Sprintf("name: %s\nparent: scope\ncgroup: /sys/fs/cgroup/fz-scope/c%d\ndeliver: {file: %s}\n",
			strconv.Quote(name), w.n, strconv.Quote(w.area+"/"+strings.ReplaceAll(file, "$HOST", w.host)))
		if sock != "" {
			src += "socket: " + strconv.Quote(w.run+"/"+sock) + "\n"
		}
		ctx := context.Background()
		info, err := w.client.Register(ctx, "fuzz.yaml", []byte(src), false)
		if err == nil {
			// Deliver enough to rotate the file target, then leave.
			if tn := w.d.conts.Get(info.Name); tn != nil {
				if f, ok := tn.Target().(*deliver.File); ok {
					w := f.Writer()
					for i := range 64 {
						w.WriteLine(fmt.Appendf(nil, "type=USER msg=audit(1.000:%d): %s", i, strings.Repeat("x", 100)))
					}
					w.Flush()
					w.Rotate()
				}
			}
			if _, err := w.client.Unregister(ctx, info.Name, control.ModeSpool, 0); err != nil {
				t.Fatalf("unregistering %q: %v", info.Name, err)
			}
		}
		after := w.outside()
		for p, was := range before {
			if after[p] != was {
				t.Fatalf("registering %q (%v) changed %s outside the scope:\n was %s\n now %s", src, err, p, was, after[p])
			}
		}
		for p, is := range after {
			if _, ok := before[p]; !ok {
				t.Fatalf("registering %q (%v) made %s outside the scope: %s", src, err, p, is)
			}
		}
	})
}
