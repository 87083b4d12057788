// Package plugin runs auditd's plugins (auditd-plugins(5)) as auditd 3.x
// runs them: every active *.conf of the plugin directory is a plugin, fed
// every host record in auditd's string format, one line each, through a
// bounded queue of its own, so that a slow or dead plugin never holds up
// the host log.
//
// Two kinds of plugin are run: a program (type = always), started with its
// args and fed the lines on its stdin, restarted when it dies up to
// max_restarts times; and auditd's builtin af_unix (path =
// builtin_af_unix), a unix socket at the path given in args to which one
// reader at a time connects and reads the same lines.
package plugin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
)

// maxLine is the longest line auditd reads in a plugin's file: its buffer
// is 160 bytes, the newline and the terminating NUL included.
const maxLine = 158

// maxArgs bounds args: auditd 3.0 takes 2, later releases more.
const maxArgs = 16

// BuiltinAFUnix is the path value of auditd's builtin af_unix plugin.
const BuiltinAFUnix = "builtin_af_unix"

// Conf is one plugin's configuration file.
type Conf struct {
	// File is the path of the file, Name its base name (the plugin's
	// name in status and metrics).
	File, Name string
	Active     bool
	// Path is the program (absolute), or BuiltinAFUnix.
	Path string
	// Args are passed to the program after its path (argv[1:]); for
	// af_unix, a mode in octal and the socket's path.
	Args []string
	// Socket and Mode are af_unix's socket path and file mode (from Args;
	// Mode is 0 when none is given: the socket keeps the umask's).
	Socket string
	Mode   os.FileMode
}

// Builtin tells whether the plugin is auditd's builtin af_unix.
func (c *Conf) Builtin() bool { return c.Path == BuiltinAFUnix }

// ParseConf parses a plugin's configuration (src, read from file), with
// auditd's rules: NAME = VALUE with the words separated by spaces, # lines
// and blank lines skipped, names and the words of values (yes, out,
// always, string) matched regardless of case. Every bad line is an error
// naming file:line; a plugin with any error is not run.
func ParseConf(src []byte, file string) (*Conf, error) {
	c := &Conf{File: file, Name: filepath.Base(file)}
	var errs []error
	fail := func(n int, format string, a ...any) {
		errs = append(errs, &fileerr.Error{File: file, Line: n, Msg: fmt.Sprintf(format, a...)})
	}
	typ := "always"
	var typeLine, pathLine, argsLine int
	lines := strings.Split(string(src), "\n")
	for i, line := range lines {
		n := i + 1
		if i == len(lines)-1 && line == "" {
			break
		}
		line = strings.TrimSuffix(line, "\r")
		ws := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' })
		if len(ws) == 0 || strings.HasPrefix(ws[0], "#") {
			continue
		}
		if len(line) > maxLine {
			fail(n, "line longer than %d characters (auditd skips it)", maxLine)
			continue
		}
		if len(ws) < 2 || ws[1] != "=" {
			fail(n, "missing \" = \" after %q: a plugin's lines are NAME = VALUE", ws[0])
			continue
		}
		if len(ws) < 3 {
			fail(n, "%s has no value", ws[0])
			continue
		}
		key, vals := strings.ToLower(ws[0]), ws[2:]
		if key != "args" && len(vals) > 1 {
			fail(n, "%s takes one value; %q is one word too many", key, vals[1])
			continue
		}
		v := strings.ToLower(vals[0])
		switch key {
		case "active":
			switch v {
			case "yes":
				c.Active = true
			case "no":
				c.Active = false
			default:
				fail(n, "active: %q is not yes or no", vals[0])
			}
		case "direction":
			switch v {
			case "out":
			case "in":
				fail(n, "direction = in: inbound plugins are not supported (auditd does not support them either)")
			default:
				fail(n, "direction: %q is not out", vals[0])
			}
		case "path":
			c.Path, pathLine = vals[0], n
		case "type":
			typ, typeLine = v, n
			if v != "always" && v != "builtin" {
				fail(n, "type: %q is not always or builtin", vals[0])
			}
		case "args":
			if len(vals) > maxArgs {
				fail(n, "args: %d words, at most %d are taken", len(vals), maxArgs)
				continue
			}
			c.Args, argsLine = append([]string(nil), vals...), n
		case "format":
			switch v {
			case "string":
			case "binary":
				fail(n, "format = binary is not supported: auditd-ns feeds plugins the string format only (set format = string; audisp-remote, audisp-syslog and af_unix readers take it)")
			default:
				fail(n, "format: %q is not string", vals[0])
			}
		default:
			fail(n, "unknown keyword %q (a plugin's file takes active, direction, path, type, args, format)", ws[0])
		}
	}
	if len(errs) == 0 && c.Active {
		c.check(typ, typeLine, pathLine, argsLine, fail)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// check validates an active plugin's path, type and args together.
func (c *Conf) check(typ string, typeLine, pathLine, argsLine int, fail func(int, string, ...any)) {
	switch {
	case c.Path == "":
		fail(0, "the plugin is active but has no path")
	case strings.HasPrefix(strings.ToLower(c.Path), "builtin_"):
		if !strings.EqualFold(c.Path, BuiltinAFUnix) {
			hint := ""
			if strings.EqualFold(c.Path, "builtin_syslog") {
				hint = " (for syslog, run path = /sbin/audisp-syslog, as auditd 3.x does)"
			}
			fail(pathLine, "path: %q is not a builtin auditd-ns has: only builtin_af_unix%s", c.Path, hint)
			return
		}
		c.Path = BuiltinAFUnix
		c.afUnixArgs(argsLine, fail)
	case typ == "builtin":
		fail(typeLine, "type = builtin needs path = builtin_af_unix; a program's type is always")
	case !filepath.IsAbs(c.Path):
		fail(pathLine, "path: %q is not an absolute path", c.Path)
	}
}

// afUnixArgs reads af_unix's args as auditd does: a word of digits is the
// socket's mode in octal, a word with a / its path.
func (c *Conf) afUnixArgs(n int, fail func(int, string, ...any)) {
	for _, a := range c.Args {
		if strings.Trim(a, "0123456789") == "" {
			m, err := strconv.ParseUint(a, 8, 32)
			if err != nil || m > 0o777 {
				fail(n, "args: %q is not a file mode in octal (like 0640)", a)
				continue
			}
			c.Mode = os.FileMode(m)
			continue
		}
		if !filepath.IsAbs(a) {
			fail(n, "args: %q is neither a mode in octal nor the socket's absolute path", a)
			continue
		}
		c.Socket = filepath.Clean(a)
	}
	if c.Socket == "" {
		fail(n, "builtin_af_unix needs the socket's path in args (like args = 0640 /var/run/audispd_events)")
	}
}

// CheckProgram checks the plugin's program as auditd does before running
// it: a regular file owned by root, with at least the permissions 0750;
// auditd-ns refuses one that others may write too.
func CheckProgram(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch m := fi.Mode(); {
	case !m.IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case st != nil && st.Uid != 0:
		return fmt.Errorf("%s is not owned by root", path)
	case m.Perm()&0o750 != 0o750:
		return fmt.Errorf("%s: permissions %04o, need at least 0750", path, m.Perm())
	case m.Perm()&0o002 != 0:
		return fmt.Errorf("%s is writable by everyone", path)
	}
	return nil
}

// LoadDir reads the plugins' files in dir: the names ending in .conf that
// do not start with a dot and hold no other dot (auditd takes a second dot
// for a backup copy). It returns the active plugins, sorted by name, and
// one error for each file it refuses; a refused file does not stop the
// others. A missing dir holds no plugins.
func LoadDir(dir string) ([]*Conf, []error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("reading plugin_dir: %w", err)}
	}
	var confs []*Conf
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".conf") || strings.Count(name, ".") > 1 {
			continue
		}
		c, err := loadFile(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c.Active {
			confs = append(confs, c)
		}
	}
	sort.Slice(confs, func(i, j int) bool { return confs[i].Name < confs[j].Name })
	return confs, errs
}

// loadFile reads one plugin's file, refusing, as auditd does, a file that
// is not regular, not owned by root (or the user running), or writable by
// everyone, and checks an active program.
func loadFile(path string) (*Conf, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, &fileerr.Error{File: path, Msg: "not a regular file"}
	case fi.Mode().Perm()&0o002 != 0:
		return nil, &fileerr.Error{File: path, Msg: "writable by everyone (auditd refuses it too)"}
	case st != nil && st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return nil, &fileerr.Error{File: path, Msg: fmt.Sprintf("owned by uid %d, not root (auditd refuses it too)", st.Uid)}
	}
	src, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, err
	}
	c, err := ParseConf(src, path)
	if err != nil {
		return nil, err
	}
	if c.Active && !c.Builtin() {
		if err := CheckProgram(c.Path); err != nil {
			return nil, &fileerr.Error{File: path, Line: lineOf(src, "path"), Msg: "path: " + err.Error()}
		}
	}
	return c, nil
}

// lineOf is the number of the last line setting key, 0 if none does.
func lineOf(src []byte, key string) int {
	n := 0
	for i, line := range strings.Split(string(src), "\n") {
		ws := strings.Fields(line)
		if len(ws) > 0 && strings.EqualFold(ws[0], key) {
			n = i + 1
		}
	}
	return n
}
