package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// The auditd.conf syntax, as auditd reads it (auditd.conf(5)):
//
//   - one option a line: NAME = VALUE, the three words separated by spaces
//     ("=" is a word of its own: "name=value" is refused, as auditd refuses
//     it); the *_action options take one more word, the script of exec;
//   - a line whose first word starts with # is a comment, and so is a blank
//     line; there are no comments after a value;
//   - option names and the words of values (yes, ROTATE, incremental_async)
//     are matched regardless of case; paths and names are taken as written;
//   - an option given twice takes its last value, as auditd does;
//   - an unknown option is an error (auditd refuses to start on one); so is
//     a line longer than auditd's 160-byte buffer, which auditd, ausearch
//     and aureport skip.
//
// auditd's own options that auditd-ns does not implement (the tcp_* and
// krb5_* listener, email) are accepted and named in one warning.

// maxLine is the longest line auditd reads: its buffer is 160 bytes, the
// newline and the terminating NUL included.
const maxLine = 158

// SideName is the name of the file beside auditd.conf that holds the
// settings auditd does not have.
const SideName = "auditd-ns.yaml"

// SidePath returns the path of the auditd-ns.yaml beside the auditd.conf at
// path.
func SidePath(path string) string { return filepath.Join(filepath.Dir(path), SideName) }

// IsAuditdConf tells which syntax the config file at path is in: a name
// ending in .yaml or .yml is YAML, one ending in .conf is auditd.conf;
// otherwise the file is auditd.conf if its first line that is neither
// blank nor a comment has "=" as its second word, and YAML if not.
func IsAuditdConf(path string, src []byte) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return false
	case ".conf":
		return true
	}
	for _, line := range strings.Split(string(src), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		return len(f) >= 2 && f[1] == "="
	}
	return false
}

// auditdOptions are auditd.conf's options that auditd-ns implements; they
// are set in auditd.conf, never in the auditd-ns.yaml beside it.
var auditdOptions = map[string]bool{
	"local_events": true, "write_logs": true, "log_file": true, "log_format": true,
	"log_group": true, "flush": true, "freq": true, "num_logs": true,
	"name_format": true, "name": true, "max_log_file": true, "max_log_file_action": true,
	"space_left": true, "space_left_action": true, "admin_space_left": true,
	"admin_space_left_action": true, "disk_full_action": true, "disk_error_action": true,
	"priority_boost": true, "plugin_dir": true, "q_depth": true, "overflow_action": true,
	"max_restarts": true,
}

// actionOptions take a second word (exec's script).
var actionOptions = map[string]bool{
	"space_left_action": true, "admin_space_left_action": true,
	"disk_full_action": true, "disk_error_action": true,
}

// unimplemented are auditd's (2.8 to 3.x) options that auditd-ns accepts in
// auditd.conf and ignores, with one warning naming those a file sets.
var unimplemented = map[string]bool{
	"dispatcher": true, "disp_qos": true, "action_mail_acct": true, "verify_email": true,
	"tcp_listen_port": true, "tcp_listen_queue": true, "tcp_max_per_addr": true,
	"use_libwrap": true, "tcp_client_ports": true, "tcp_client_max_idle": true,
	"transport": true, "enable_krb5": true, "krb5_principal": true, "krb5_key_file": true,
	"distribute_network": true, "end_of_event_timeout": true,
}

// ParseAuditdConf parses an auditd.conf (src, read from file) and the
// auditd-ns.yaml beside it (side, read from sideFile; nil and "" if there
// is none). Relative paths are taken relative to file's directory.
func ParseAuditdConf(src []byte, file string, side []byte, sideFile string) (*Config, error) {
	c := Default()
	c.File = file
	c.Side = sideFile
	c.PluginDir = DefaultPluginDir // auditd's default; the YAML layout has none
	p := &parser{file: file}
	c.warnIgnored(file, p.auditdConf(c, src), SidePath(file))
	if sideFile != "" {
		sp := &parser{file: sideFile}
		sp.yaml(c, side, func(key string) string {
			switch {
			case auditdOptions[key]:
				return fmt.Sprintf("%s is an auditd.conf option: set it in %s, which auditd-ns reads", key, file)
			case unimplemented[key]:
				return fmt.Sprintf("%s is an auditd.conf option that auditd-ns does not implement", key)
			}
			return ""
		})
		p.errs = append(p.errs, sp.errs...)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	c.resolve(filepath.Dir(file))
	return c, c.check(p)
}

// warnIgnored adds the one warning naming the unimplemented auditd options
// that file sets; listenIn is where auditd-ns's listener is configured.
func (c *Config) warnIgnored(file string, ignored []string, listenIn string) {
	if len(ignored) == 0 {
		return
	}
	w := fmt.Sprintf("%s: ignoring auditd options that auditd-ns does not implement: %s", file, strings.Join(ignored, ", "))
	if _, ok := c.pos["tcp_listen_port"]; ok {
		w += " (auditd-ns's remote-logging listener is listen: in " + listenIn + ")"
	}
	c.Warnings = append(c.Warnings, w)
}

// word is one space-separated word of a line, with its 1-based column.
type word struct {
	s   string
	col int
}

// words splits a line at spaces, as auditd does: a tab is part of a word.
func words(line string) []word {
	var ws []word
	start := -1
	for i := 0; i <= len(line); i++ {
		if i == len(line) || line[i] == ' ' {
			if start >= 0 {
				ws = append(ws, word{line[start:i], start + 1})
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return ws
}

// auditdConf sets c from auditd.conf text and returns the unimplemented
// options it sets, as "NAME (line N)".
func (p *parser) auditdConf(c *Config, src []byte) []string {
	var ignored []string
	lines := strings.Split(string(src), "\n")
	for i, line := range lines {
		n := i + 1
		if i == len(lines)-1 && line == "" {
			break
		}
		line = strings.TrimSuffix(line, "\r")
		at := func(col int) Pos { return Pos{p.file, n, col} }
		ws := words(line)
		if len(ws) == 0 || strings.HasPrefix(ws[0].s, "#") {
			continue
		}
		if len(line) > maxLine {
			p.failAt(at(1), "line longer than %d characters: auditd, ausearch and aureport skip it", maxLine)
			continue
		}
		tab := ""
		if strings.ContainsRune(line, '\t') {
			tab = " (auditd.conf separates words with spaces; a tab is part of a word)"
		}
		if strings.ContainsRune(ws[0].s, '=') {
			p.failAt(at(ws[0].col), "write %q with spaces around =, as auditd.conf needs: NAME = VALUE%s", ws[0].s, tab)
			continue
		}
		if len(ws) < 2 || ws[1].s != "=" {
			p.failAt(at(ws[0].col), "missing \" = \" after %q: auditd.conf lines are NAME = VALUE%s", ws[0].s, tab)
			continue
		}
		if len(ws) < 3 {
			p.failAt(at(ws[1].col), "%s has no value%s", ws[0].s, tab)
			continue
		}
		key := strings.ToLower(ws[0].s)
		val := ws[2].s
		c.setPos(key, at(ws[0].col))
		switch {
		case unimplemented[key]:
			ignored = append(ignored, fmt.Sprintf("%s (line %d)", key, n))
			continue
		case !auditdOptions[key]:
			if _, ours := fields[key]; ours || mappings[key] {
				p.failAt(at(ws[0].col), "%s is an auditd-ns setting, not an auditd.conf option: set it in %s (auditd, ausearch and aureport refuse unknown options in auditd.conf)",
					key, SidePath(p.file))
				continue
			}
			p.failAt(at(ws[0].col), "unknown option %q%s", ws[0].s, suggestConf(key))
			continue
		}
		if len(ws) > 4 || (len(ws) == 4 && !actionOptions[key]) {
			extra := ws[3]
			if actionOptions[key] {
				extra = ws[4]
			}
			msg := "%s takes one value; %q is one word too many%s"
			if strings.HasPrefix(extra.s, "#") {
				msg = "%s takes one value; %q: auditd.conf has no comments after a value, only on lines of their own%s"
			}
			p.failAt(at(extra.col), msg, key, extra.s, tab)
			continue
		}
		if len(ws) == 4 {
			val += " " + ws[3].s
		}
		if err := fields[key](c, val); err != nil {
			p.failAt(at(ws[2].col), "%s: %v%s", key, err, tab)
		}
	}
	return ignored
}

// suggestConf names the auditd.conf options near an unknown one.
func suggestConf(key string) string {
	var close []string
	for k := range auditdOptions {
		if strings.Contains(k, key) || strings.Contains(key, k) || editDistance(k, key) <= 2 {
			close = append(close, k)
		}
	}
	sort.Strings(close)
	if len(close) > 0 {
		return "; did you mean " + strings.Join(close, " or ") + "?"
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// checkOwner refuses an auditd.conf that someone other than root (or the
// user reading it) could have written, as auditd refuses it: owned by
// another user, writable by everyone, or not a regular file.
func checkOwner(path string, fi os.FileInfo) error {
	switch st, ok := fi.Sys().(*syscall.Stat_t); {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file", path)
	case fi.Mode().Perm()&0o002 != 0:
		return fmt.Errorf("%s: writable by everyone (auditd refuses it too): chmod o-w %s", path, path)
	case ok && st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s: owned by uid %d, neither root nor this user (auditd refuses it too)", path, st.Uid)
	}
	return nil
}
