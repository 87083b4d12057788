package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// defaultHookConfig is where the host admin says what OCI annotations may
// choose; configs/oci-hook.yaml is an example.
const defaultHookConfig = "/etc/auditd-ns/oci-hook.yaml"

// maxRulesFile bounds a rules file an annotation names.
const maxRulesFile = 1 << 20

// hookConfig is the admin's hook config. What it does not allow, the
// annotations cannot choose.
type hookConfig struct {
	Files struct {
		// Dirs are the directories file targets go in: deliver.file
		// must be strictly inside one (a relative one is taken in the
		// first). A last element {id} is the container's OCI id: the
		// hook creates that directory, so that containers cannot
		// name each other's files.
		Dirs []string `yaml:"dirs"`
	} `yaml:"files"`
	Remote struct {
		// Ports are the ports deliver.remote may name. The host part is
		// free: it is dialled from the container's own network
		// namespace, where the container could dial it itself.
		Ports []int `yaml:"ports"`
		// HostNetns lets a container that shares the host's network
		// namespace have a remote target (dialled from the host's).
		HostNetns bool `yaml:"host_netns"`
	} `yaml:"remote"`
	// Parents are the containers that annotations may nest a container in.
	Parents []string `yaml:"parents"`
	Rules   struct {
		// Dir is where the rules files an annotation may name are; ""
		// refuses the rules annotation.
		Dir string `yaml:"dir"`
	} `yaml:"rules"`
	Queue struct {
		Memory    string `yaml:"memory"`
		Spool     string `yaml:"spool"`
		MaxMemory string `yaml:"max_memory"`
		MaxSpool  string `yaml:"max_spool"`
	} `yaml:"queue"`

	path                               string
	memory, spool, maxMemory, maxSpool int64
}

// loadHookConfig reads and checks the admin's hook config. It must not be
// writable by anyone but its owner, root or the hook's user.
func loadHookConfig(path string) (*hookConfig, error) {
	fail := func(format string, args ...any) (*hookConfig, error) {
		return nil, fmt.Errorf("the hook config %s: %s", path, fmt.Sprintf(format, args...))
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fail("does not exist: it says which targets, parents and rules annotations may choose (configs/oci-hook.yaml is an example); without it the hook registers nothing")
	}
	if err != nil {
		return nil, fmt.Errorf("reading the hook config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading the hook config: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return fail("is not a regular file")
	case fi.Mode().Perm()&0o022 != 0:
		return fail("is writable by group or others (mode %v): only its owner may write it", fi.Mode().Perm())
	case st != nil && st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return fail("is owned by uid %d, neither root nor the hook's user", st.Uid)
	}
	src, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the hook config: %w", err)
	}
	c := &hookConfig{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fail("%v", err)
	}
	for i, d := range c.Files.Dirs {
		base, last := filepath.Split(d)
		if !filepath.IsAbs(d) || filepath.Clean(d) != d || d == "/" || strings.Contains(base, "{id}") || strings.Contains(last, "{id}") && last != "{id}" {
			return fail("files.dirs[%d] %q: give a clean absolute directory other than /, with {id} only as its whole last element", i, d)
		}
	}
	for i, p := range c.Remote.Ports {
		if p < 1 || p > 65535 {
			return fail("remote.ports[%d] %d is not a port", i, p)
		}
	}
	if d := c.Rules.Dir; d != "" && (!filepath.IsAbs(d) || filepath.Clean(d) != d || d == "/") {
		return fail("rules.dir %q: give a clean absolute directory other than /", d)
	}
	for _, s := range []struct {
		key  string
		text string
		def  int64
		out  *int64
	}{
		{"queue.memory", c.Queue.Memory, registry.DefaultMemory, &c.memory},
		{"queue.spool", c.Queue.Spool, registry.DefaultSpool, &c.spool},
		{"queue.max_memory", c.Queue.MaxMemory, -1, &c.maxMemory},
		{"queue.max_spool", c.Queue.MaxSpool, -1, &c.maxSpool},
	} {
		*s.out = s.def
		if s.text != "" {
			if *s.out, err = registry.ParseSize(s.text); err != nil {
				return fail("%s: %v", s.key, err)
			}
		}
	}
	// Without a maximum, annotations may only lower the default.
	if c.maxMemory < 0 {
		c.maxMemory = c.memory
	}
	if c.maxSpool < 0 {
		c.maxSpool = c.spool
	}
	return c, nil
}

// inside returns path relative to dir when path is strictly inside dir,
// and whether it is.
func inside(dir, path string) (string, bool) {
	rel, ok := strings.CutPrefix(path, dir+"/")
	if dir == "/" {
		rel, ok = strings.CutPrefix(path, "/")
	}
	return rel, ok && rel != ""
}

// cleanRel reports whether rel is a clean relative path that stays where
// it starts (no "..", no ".").
func cleanRel(rel string) bool {
	return rel != "" && !filepath.IsAbs(rel) && filepath.Clean(rel) == rel && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// fileTarget checks a deliver.file annotation against files.dirs and
// returns the target's absolute path and the directory it must stay
// beneath. It creates an {id} directory, and refuses a path that passes
// through a symlink, or that is not a regular file where one exists.
//
// owner, when set, is the host uid and gid of a user-namespaced
// container's root: the {id} directory is given to them, so that the
// container can reach its file (which the daemon gives them too).
func (c *hookConfig) fileTarget(file, id string, owner *idPair) (path, base string, err error) {
	if len(c.Files.Dirs) == 0 {
		return "", "", fmt.Errorf("the hook config %s allows no file targets (files: {dirs: [...]})", c.path)
	}
	var rel string
	var mkID bool
	for _, tmpl := range c.Files.Dirs {
		d := strings.ReplaceAll(tmpl, "{id}", id)
		if !filepath.IsAbs(file) {
			base, rel, mkID = d, file, d != tmpl
			break
		}
		if r, ok := inside(d, file); ok {
			base, rel, mkID = d, r, d != tmpl
			break
		}
	}
	if base == "" {
		return "", "", fmt.Errorf("not inside a directory the hook config %s allows (%s)", c.path, strings.Join(c.Files.Dirs, ", "))
	}
	if !cleanRel(rel) {
		return "", "", fmt.Errorf("give a clean path (no '.', '..' or '//') inside %s", base)
	}
	dirfd, err := openBase(base, mkID, owner)
	if err != nil {
		return "", "", err
	}
	defer unix.Close(dirfd)
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	fd, err := unix.Openat2(dirfd, rel, how)
	switch {
	case errors.Is(err, unix.ENOENT):
		// The daemon creates it (and its directories) beneath base.
		return filepath.Join(base, rel), base, nil
	case err != nil:
		return "", "", beneathError(base, rel, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", "", fmt.Errorf("%s: %w", filepath.Join(base, rel), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", "", fmt.Errorf("%s exists and is not a regular file", filepath.Join(base, rel))
	}
	return filepath.Join(base, rel), base, nil
}

// openBase opens an allowed directory; mkID creates its last element
// (the container's {id} directory) beneath its parent first, and gives it
// to owner when set.
func openBase(base string, mkID bool, owner *idPair) (int, error) {
	if mkID {
		parent, id := filepath.Split(base)
		pfd, err := unix.Open(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("the directory of file targets %s: %w", parent, err)
		}
		defer unix.Close(pfd)
		if err := unix.Mkdirat(pfd, id, 0o750); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("creating the container's directory %s: %w", base, err)
		}
		how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
		fd, err := unix.Openat2(pfd, id, how)
		if err != nil {
			return -1, beneathError(parent, id, err)
		}
		if owner != nil {
			if err := unix.Fchownat(fd, "", owner.uid, owner.gid, unix.AT_EMPTY_PATH); err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("giving the container's directory %s to %d:%d: %w", base, owner.uid, owner.gid, err)
			}
		}
		return fd, nil
	}
	fd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("the directory of file targets %s: %w", base, err)
	}
	return fd, nil
}

func beneathError(base, rel string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%s passes through a symlink: refused", filepath.Join(base, rel))
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%s leaves %s: refused", filepath.Join(base, rel), base)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%s: a part of it is not a directory", filepath.Join(base, rel))
	}
	return fmt.Errorf("%s: %w", filepath.Join(base, rel), err)
}

// rulesNode reads the rules file an annotation names, strictly inside
// rules.dir and resolved beneath it (no symlink, no other mount, no FIFO
// or device), as root reads it.
func (c *hookConfig) rulesNode(name string) (*yaml.Node, error) {
	what := fmt.Sprintf("annotation %srules %q", annotationPrefix, name)
	dir := c.Rules.Dir
	if dir == "" {
		return nil, fmt.Errorf("%s: the hook config %s allows no rules annotation (rules: {dir: DIR})", what, c.path)
	}
	rel := name
	if filepath.IsAbs(name) {
		r, ok := inside(dir, name)
		if !ok {
			return nil, fmt.Errorf("%s: not inside %s, the rules directory of the hook config %s", what, dir, c.path)
		}
		rel = r
	}
	if !cleanRel(rel) {
		return nil, fmt.Errorf("%s: give a clean path (no '.', '..' or '//') inside %s", what, dir)
	}
	dirfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: the rules directory: %w", what, err)
	}
	defer unix.Close(dirfd)
	how := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	fd, err := unix.Openat2(dirfd, rel, how)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, beneathError(dir, rel, err))
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, rel))
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxRulesFile {
		return nil, fmt.Errorf("%s: not a regular file of at most %d bytes", what, maxRulesFile)
	}
	src, err := io.ReadAll(io.LimitReader(f, maxRulesFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return registry.RulesNode(src, filepath.Join(dir, rel))
}

// idPair is a host uid and gid.
type idPair struct{ uid, gid int }

// containerRoot returns the host uid and gid that the container's root
// (uid and gid 0 in its user namespace) is, from PROC/PID/uid_map and
// gid_map; nil when the container shares the host's ids (the identity
// map) or maps no root.
func containerRoot(proc string, pid int) (*idPair, error) {
	var ids [2]int
	for i, name := range []string{"uid_map", "gid_map"} {
		b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // a kernel without user namespaces
		}
		if err != nil {
			return nil, fmt.Errorf("reading the container's user namespace: %w", err)
		}
		ids[i] = -1
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			in, err1 := strconv.ParseUint(f[0], 10, 32)
			out, err2 := strconv.ParseUint(f[1], 10, 32)
			n, err3 := strconv.ParseUint(f[2], 10, 32)
			if err1 != nil || err2 != nil || err3 != nil {
				return nil, fmt.Errorf("reading the container's %s: bad line %q", name, line)
			}
			if in == 0 && n > 0 {
				if out == 0 && n == 1<<32-1 {
					return nil, nil // the host's own ids
				}
				ids[i] = int(out)
			}
		}
		if ids[i] < 0 {
			return nil, nil
		}
	}
	return &idPair{uid: ids[0], gid: ids[1]}, nil
}
