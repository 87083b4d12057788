package beneath_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
)

func TestCheckAbs(t *testing.T) {
	for p, want := range map[string]string{
		"/srv/a.log":      "",
		"/a":              "",
		"":                "is empty",
		"srv/a.log":       "must be an absolute path",
		"/":               "is the root directory",
		"/srv/":           `must not end in "/"`,
		"/srv//a":         `must not contain "//"`,
		"/srv/../etc":     `must not contain a ".." element`,
		"/srv/./a":        `must not contain a "." element`,
		"/srv/..":         `must not contain a ".." element`,
		"/srv/a\x00b":     "NUL",
		"/srv/..a/b../.c": "",
	} {
		err := beneath.CheckAbs("deliver.file", p)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "deliver.file")) {
			t.Errorf("CheckAbs(%q) = %v, want %q", p, err, want)
		}
	}
}

func TestInside(t *testing.T) {
	for _, tc := range []struct {
		p, dir string
		want   bool
	}{
		{"/srv/t/a.log", "/srv/t", true},
		{"/srv/t/x/a.log", "/srv/t", true},
		{"/srv/t", "/srv/t", false},
		{"/srv/tt/a.log", "/srv/t", false},
		{"/srv/t/../a.log", "/srv/t", false},
		{"/srv/t/a.log", "/srv/t/", false},
		{"/a", "/", true},
	} {
		if got := beneath.Inside(tc.p, tc.dir); got != tc.want {
			t.Errorf("Inside(%q, %q) = %v", tc.p, tc.dir, got)
		}
	}
}

func TestDirRefusesSymlinksAndEscapes(t *testing.T) {
	area, host := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(host, "f"), []byte("host"), 0o600)
	os.Symlink(host, filepath.Join(area, "link"))
	os.Symlink(filepath.Join(host, "f"), filepath.Join(area, "f"))
	d, err := beneath.OpenStrict(area, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, rel := range []string{"link/f", "f", "link/new"} {
		if f, err := d.OpenFile(rel, os.O_RDWR|os.O_CREATE, 0o600); err == nil || !errors.Is(err, beneath.ErrSymlink) {
			f.Close()
			t.Errorf("OpenFile(%q): %v, want a refused symlink", rel, err)
		}
	}
	if _, err := d.OpenFile("../x", os.O_RDWR|os.O_CREATE, 0o600); !errors.Is(err, beneath.ErrOutside) {
		t.Errorf("OpenFile(../x): %v, want outside", err)
	}
	if _, err := d.MkdirAll("link/sub", 0o700); !errors.Is(err, beneath.ErrSymlink) {
		t.Errorf("MkdirAll through a symlink: %v", err)
	}
	if _, err := d.MkdirAll("a/../../b", 0o700); !errors.Is(err, beneath.ErrOutside) {
		t.Errorf("MkdirAll with ..: %v", err)
	}
	if err := d.Rename("f", "../g"); err == nil {
		t.Errorf("Rename out of the directory succeeded")
	}
	// Removing a symlink removes the link, never its target.
	if err := d.Remove("f"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "f")); string(b) != "host" {
		t.Errorf("the host file changed: %q", b)
	}
	if _, err := beneath.OpenStrict(filepath.Join(area, "link"), false, 0); !errors.Is(err, beneath.ErrSymlink) {
		t.Errorf("OpenStrict through a symlink: %v", err)
	}
	if es, _ := os.ReadDir(host); len(es) != 1 {
		t.Errorf("the host directory holds %d entries, want 1", len(es))
	}
}
