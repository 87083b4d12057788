package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The plugins' files Debian's auditd and audispd-plugins 3.0.9 install.
var stock = map[string]string{
	"af_unix.conf":   "\n# This file controls the configuration of the\n# af_unix socket plugin.\n\nactive = yes\ndirection = out\npath = builtin_af_unix\ntype = builtin \nargs = 0640 /var/run/audispd_events\nformat = string\n",
	"au-remote.conf": "active = no\ndirection = out\npath = /sbin/audisp-remote\ntype = always\n#args =\nformat = string\n",
	"syslog.conf":    "active = yes\ndirection = out\npath = /sbin/audisp-syslog\ntype = always \nargs = LOG_INFO\nformat = string\n",
	"laurel.conf":    "active = yes\ndirection = out\ntype = always\nformat = string\npath = /usr/sbin/laurel\nargs = --config /etc/laurel/config.toml\n",
}

func TestParseStock(t *testing.T) {
	for name, src := range stock {
		c, err := ParseConf([]byte(src), "/etc/audit/plugins.d/"+name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.Name != name {
			t.Errorf("%s: name %q", name, c.Name)
		}
	}
	c, _ := ParseConf([]byte(stock["af_unix.conf"]), "af_unix.conf")
	if !c.Builtin() || c.Socket != "/var/run/audispd_events" || c.Mode != 0o640 || !c.Active {
		t.Errorf("af_unix: %+v", c)
	}
	c, _ = ParseConf([]byte(stock["laurel.conf"]), "laurel.conf")
	if c.Path != "/usr/sbin/laurel" || strings.Join(c.Args, " ") != "--config /etc/laurel/config.toml" {
		t.Errorf("laurel: %+v", c)
	}
	// Case of names and values does not matter, as in auditd.
	c, err := ParseConf([]byte("ACTIVE = YES\nPath = /bin/cat\nFORMAT = String\n"), "x.conf")
	if err != nil || !c.Active || c.Path != "/bin/cat" {
		t.Errorf("case: %+v %v", c, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"active = yes\npath = /sbin/audisp-remote\nformat = binary\n", "p.conf:3: format = binary is not supported"},
		{"active = yes\npath = /x/y\nbogus = 1\n", `p.conf:3: unknown keyword "bogus"`},
		{"active = yes\ndirection = in\npath = /x/y\n", "p.conf:2: direction = in"},
		{"active = yes\npath = builtin_syslog\ntype = builtin\n", `p.conf:2: path: "builtin_syslog" is not a builtin auditd-ns has`},
		{"active = yes\npath = sbin/x\n", `p.conf:2: path: "sbin/x" is not an absolute path`},
		{"active=yes\n", `p.conf:1: missing " = " after "active=yes"`},
		{"active = maybe\n", `p.conf:1: active: "maybe" is not yes or no`},
		{"active = yes\npath = /x/y\ntype = builtin\n", "p.conf:3: type = builtin needs path = builtin_af_unix"},
		{"active = yes\npath = builtin_af_unix\nargs = 0640\n", "p.conf:3: builtin_af_unix needs the socket's path"},
		{"active = yes\npath = builtin_af_unix\nargs = 0999 /run/x\n", `p.conf:3: args: "0999" is not a file mode`},
		{"active = yes\n", "p.conf: the plugin is active but has no path"},
		{"active = yes\npath = /x/y\nformat = string json\n", `p.conf:3: format takes one value`},
		{"path = /x/y\n" + strings.Repeat("#", 10) + "\nargs = " + strings.Repeat("a", 200) + "\n", "p.conf:3: line longer than 158"},
	} {
		_, err := ParseConf([]byte(tc.src), "p.conf")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %s", tc.src, err, tc.want)
		}
	}
	// An inactive plugin's syntax is checked, its path is not.
	if _, err := ParseConf([]byte("active = no\npath = relative\n"), "p.conf"); err != nil {
		t.Errorf("inactive: %v", err)
	}
}

func TestLoadDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a plugin's program must be owned by root")
	}
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	write := func(name, body string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, name), mode)
	}
	write("prog", "#!/bin/sh\nexec cat >/dev/null\n", 0o750)
	write("good.conf", "active = yes\npath = "+prog+"\n", 0o640)
	write("off.conf", "active = no\npath = "+prog+"\n", 0o640)
	write("bad.conf", "active = yes\npath = "+prog+"\nformat = binary\n", 0o640)
	write("good.conf.bak", "garbage\n", 0o640) // backup copy: skipped
	write(".hidden.conf", "garbage\n", 0o640)  // hidden: skipped
	write("README", "garbage\n", 0o640)        // not .conf: skipped
	write("open.conf", "active = yes\npath = "+prog+"\n", 0o646)
	write("noexec.conf", "active = yes\npath = "+filepath.Join(dir, "README")+"\n", 0o640)
	confs, errs := LoadDir(dir)
	if len(confs) != 1 || confs[0].Name != "good.conf" {
		t.Errorf("confs %+v", confs)
	}
	all := ""
	for _, e := range errs {
		all += e.Error() + "\n"
	}
	for _, want := range []string{dir + "/bad.conf:3: format = binary", dir + "/open.conf: writable by everyone",
		dir + "/noexec.conf:2: path: " + dir + "/README: permissions 0640, need at least 0750"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors do not say %q:\n%s", want, all)
		}
	}
	if len(errs) != 3 {
		t.Errorf("%d errors, want 3:\n%s", len(errs), all)
	}
	if c, e := LoadDir(filepath.Join(dir, "none")); c != nil || e != nil {
		t.Errorf("missing dir: %v %v", c, e)
	}
}
