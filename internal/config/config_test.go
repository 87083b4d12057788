package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

func TestExampleConfigIsValid(t *testing.T) {
	c, err := config.Load("../../configs/auditd-ns.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Flush != hostlog.FlushIncrementalAsync || c.Log.MaxLogFile != 8<<20 || c.AuditRules != filepath.Join(mustAbs(t, "../../configs"), "audit.rules") {
		t.Errorf("example config parsed as %+v", c)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(a)
}

func TestValues(t *testing.T) {
	src := `
log_file: /var/log/x/audit.log
log_format: enriched
flush: DATA
freq: 20
max_log_file: 100
num_logs: 9
max_log_file_action: KEEP_LOGS
space_left: 25%
space_left_action: exec /usr/local/bin/warn
admin_space_left: 10
admin_space_left_action: halt
disk_full_action: rotate
disk_error_action: syslog
name_format: user
name: box1
backlog_limit: 320
rate_limit: 100
backlog_wait_time: 60000
failure: panic
rules_on_exit: delete
lost_check_interval: 2s
`
	c, err := config.Parse([]byte(src), "/etc/auditd-ns/x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Log
	checks := []struct {
		name      string
		got, want any
	}{
		{"log_file", l.Path, "/var/log/x/audit.log"},
		{"log_format", l.Format, hostlog.Enriched},
		{"flush", l.Flush, hostlog.FlushData},
		{"freq", l.Freq, 20},
		{"max_log_file", l.MaxLogFile, int64(100 << 20)},
		{"num_logs", l.NumLogs, 9},
		{"max_log_file_action", l.MaxLogFileAction, hostlog.Action{Kind: hostlog.ActionKeepLogs}},
		{"space_left", l.SpaceLeft, hostlog.Space{Percent: 25}},
		{"space_left_action", l.SpaceLeftAction, hostlog.Action{Kind: hostlog.ActionExec, Exec: "/usr/local/bin/warn"}},
		{"admin_space_left", l.AdminSpaceLeft, hostlog.Space{Bytes: 10 << 20}},
		{"admin_space_left_action", l.AdminSpaceLeftAction, hostlog.Action{Kind: hostlog.ActionHalt}},
		{"disk_full_action", l.DiskFullAction, hostlog.Action{Kind: hostlog.ActionRotate}},
		{"disk_error_action", l.DiskErrorAction, hostlog.Action{Kind: hostlog.ActionSyslog}},
		{"name", c.Name, "box1"},
		{"backlog_limit", *c.BacklogLimit, uint32(320)},
		{"rate_limit", *c.RateLimit, uint32(100)},
		{"backlog_wait_time", *c.BacklogWaitTime, uint32(60000)},
		{"failure", *c.Failure, uint32(2)},
		{"rules_on_exit", c.RulesOnExit, "delete"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"flush: sometimes\n", []string{`f.yaml:1:8: flush: "sometimes" is not one of none, incremental, incremental_async, data, sync`}},
		{"log_file: a\nlog_fiel: b\n", []string{`f.yaml:2:1: unknown option "log_fiel"`}},
		{"freq: 0\nnum_logs: many\n", []string{`f.yaml:1:7: freq: "0" is not a positive number of records`, `f.yaml:2:11: num_logs: "many" is not a number from 0 to 999`}},
		{"space_left_action: email\n", []string{`f.yaml:1:20: space_left_action: email is not supported by auditd-ns (use exec with a script, or halt)`}},
		{"disk_full_action: exec script.sh\n", []string{`f.yaml:1:19: disk_full_action: exec needs an absolute path to a script`}},
		{"disk_error_action: rotate\n", []string{`f.yaml:1:20: disk_error_action: "rotate" is not one of ignore, syslog, exec, suspend, halt`}},
		{"space_left: 150%\n", []string{`f.yaml:1:13: space_left: "150%" is not a percentage between 0 and 100`}},
		{"backlog_limit: -1\n", []string{`f.yaml:1:16: backlog_limit: "-1" is not a number from 0 to 2147483647`}},
		{"log_file: [a, b]\n", []string{`f.yaml:1:11: log_file takes a single value`}},
		{"flush: data\nflush: sync\n", []string{`f.yaml:2:1: flush is given twice`}},
		{"- a\n- b\n", []string{`f.yaml:1:1: the config must be a mapping`}},
		{"name_format: user\n", []string{`f.yaml:1:1: name_format user needs name`}},
		{"flush: [\n", []string{`f.yaml:1: yaml: did not find expected node content`}},
		{"flush: data\nfreq: \x01\n", []string{`f.yaml:2:7: yaml: control characters are not allowed`}},
		{"scoped_remote_allow: [127.0.0.1/32:6000, example.com:60]\n", []string{`f.yaml:1:42: scoped_remote_allow: "example.com:60" is not CIDR:PORT`}},
		{"scoped_remote_allow: 127.0.0.1/32:6000\n", []string{`f.yaml:1:22: scoped_remote_allow is a list`}},
		{"scoped_quota_containers: 0\nscoped_quota_memory: lots\n", []string{`f.yaml:1:26: scoped_quota_containers: "0" is not a number`, `f.yaml:2:22: scoped_quota_memory: "lots" is not a size`}},
	} {
		_, err := config.Parse([]byte(tc.src), "f.yaml")
		if err == nil {
			t.Errorf("%q: no error", tc.src)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q:\n got %s\nwant %s", tc.src, err, w)
			}
		}
	}
}

// auditd's options that auditd-ns does not implement are named in one
// warning, in the YAML layout too, never refused as unknown.
func TestYAMLUnimplemented(t *testing.T) {
	c, err := config.Parse([]byte("flush: data\ndispatcher: /sbin/audispd\ntcp_listen_port: 60\nuse_libwrap: no\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := "f.yaml: ignoring auditd options that auditd-ns does not implement: dispatcher (line 2), tcp_listen_port (line 3), use_libwrap (line 4) (auditd-ns's remote-logging listener is listen: in this file)"
	if len(c.Warnings) != 1 || c.Warnings[0] != want {
		t.Errorf("warnings %q, want %q", c.Warnings, want)
	}
	if c, err := config.Parse([]byte("flush: data\n"), "f.yaml"); err != nil || c.Warnings != nil {
		t.Errorf("no unimplemented option: %v, %q", err, c.Warnings)
	}
}

func TestMissingFileIsNotInvalid(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, config.ErrNotFound) {
		t.Errorf("missing file: %v, want ErrNotFound", err)
	}
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("flush: x\n"), 0o600)
	if _, err := config.Load(p); err == nil || errors.Is(err, config.ErrNotFound) {
		t.Errorf("invalid file: %v, want a parse error", err)
	}
}

func TestRelativePaths(t *testing.T) {
	c, err := config.Parse([]byte("log_file: logs/audit.log\naudit_rules: audit.rules\n"), "/etc/auditd-ns/auditd-ns.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Path != "/etc/auditd-ns/logs/audit.log" || c.AuditRules != "/etc/auditd-ns/audit.rules" {
		t.Errorf("relative paths resolved to %q and %q", c.Log.Path, c.AuditRules)
	}
}

func TestScoped(t *testing.T) {
	c, err := config.Parse(nil, "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Scoped.RemoteAllow != nil || c.Scoped.RemoteHostNetNS || c.Scoped.Quota != control.DefaultQuota {
		t.Errorf("defaults: %+v", c.Scoped)
	}
	c, err = config.Parse([]byte("scoped_remote_allow: [127.0.0.1/32:6000, 10.0.0.0/8:60-70]\nscoped_remote_host_netns: yes\n"+
		"scoped_quota_containers: 8\nscoped_quota_memory: 64MiB\nscoped_quota_spool: 2GiB\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var allow []string
	for _, a := range c.Scoped.RemoteAllow {
		allow = append(allow, a.String())
	}
	if strings.Join(allow, " ") != "127.0.0.1/32:6000 10.0.0.0/8:60-70" || !c.Scoped.RemoteHostNetNS ||
		c.Scoped.Quota != (registry.Quota{Containers: 8, Memory: 64 << 20, Spool: 2 << 30}) {
		t.Errorf("parsed %+v", c.Scoped)
	}
}
