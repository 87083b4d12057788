package hostlog_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
)

// hostFile makes a file outside the area that no write may touch, and
// returns a check that it is unchanged (content and mtime).
func hostFile(t *testing.T, path string) func() {
	t.Helper()
	if err := os.WriteFile(path, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path, old, old)
	before, _ := os.Stat(path)
	return func() {
		t.Helper()
		b, err := os.ReadFile(path)
		st, _ := os.Stat(path)
		if err != nil || string(b) != "host secret\n" || !st.ModTime().Equal(before.ModTime()) {
			t.Errorf("host file %s changed: %q, %v (mtime %v, was %v)", path, b, err, st.ModTime(), before.ModTime())
		}
	}
}

func TestBeneathRefusesSymlinks(t *testing.T) {
	area, host := t.TempDir(), t.TempDir()
	unchanged := hostFile(t, filepath.Join(host, "passwd"))
	os.Symlink(filepath.Join(host, "passwd"), filepath.Join(area, "a.log"))
	os.Symlink(host, filepath.Join(area, "sub"))
	for _, p := range []string{filepath.Join(area, "a.log"), filepath.Join(area, "sub/passwd")} {
		_, err := hostlog.Open(hostlog.Options{Path: p, Beneath: area})
		if err == nil || !strings.Contains(err.Error(), "symlink") {
			t.Errorf("Open(%s) beneath %s: %v, want a refused symlink", p, area, err)
		}
	}
	if _, err := hostlog.Open(hostlog.Options{Path: filepath.Join(host, "passwd"), Beneath: area}); err == nil {
		t.Errorf("a path outside Beneath was opened")
	}
	// The area itself behind a symlink is refused too.
	link := filepath.Join(t.TempDir(), "area")
	os.Symlink(area, link)
	if _, err := hostlog.Open(hostlog.Options{Path: link + "/x/a.log", Beneath: link}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Beneath through a symlink: %v", err)
	}
	unchanged()
}

// TestBeneathRotationKeepsItsDirectory swaps the log's directory for a
// symlink to a host directory after Open: rotation must stay in the
// directory it opened, and never rename, remove or create in the host's.
func TestBeneathRotationKeepsItsDirectory(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  func(area, path string) hostlog.Options
	}{
		{"beneath", func(area, path string) hostlog.Options { return hostlog.Options{Path: path, Beneath: area, NumLogs: 3} }},
		{"hold", func(area, path string) hostlog.Options { return hostlog.Options{Path: path, HoldDir: true, NumLogs: 3} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			area, host := t.TempDir(), t.TempDir()
			var checks []func()
			for _, n := range []string{"a.log", "a.log.1", "a.log.2"} {
				checks = append(checks, hostFile(t, filepath.Join(host, n)))
			}
			path := filepath.Join(area, "sub", "a.log")
			w, err := hostlog.Open(tc.opt(area, path))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			must(t, w.WriteLine([]byte("type=USER msg=audit(1.000:1): before")))
			must(t, w.Flush())
			must(t, os.Rename(filepath.Join(area, "sub"), filepath.Join(area, "sub.old")))
			must(t, os.Symlink(host, filepath.Join(area, "sub")))
			for range 3 {
				must(t, w.Rotate())
			}
			must(t, w.WriteLine([]byte("type=USER msg=audit(1.000:2): after")))
			must(t, w.Flush())
			for _, c := range checks {
				c()
			}
			if names, _ := os.ReadDir(host); len(names) != 3 {
				t.Errorf("the host directory has %d entries, want its 3", len(names))
			}
			if _, err := os.Stat(filepath.Join(area, "sub.old", "a.log.2")); err != nil {
				t.Errorf("rotation did not happen in the log's own directory: %v", err)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
