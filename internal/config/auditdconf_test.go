package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/plugin"
)

// stock is an auditd.conf in the shape Debian's auditd package installs:
// every option a line, comments and commented-out options, and auditd's
// own options that auditd-ns does not implement.
const stock = `#
# auditd config
#

local_events = yes
write_logs = yes
log_file = /var/log/audit/audit.log
log_group = root
log_format = ENRICHED
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 8
num_logs = 5
priority_boost = 4
name_format = NONE
##name = mydomain
max_log_file_action = ROTATE
space_left = 75
space_left_action = SYSLOG
verify_email = yes
action_mail_acct = root
admin_space_left = 50
admin_space_left_action = SUSPEND
disk_full_action = SUSPEND
disk_error_action = SUSPEND
use_libwrap = yes
##tcp_listen_port = 60
tcp_listen_queue = 5
tcp_max_per_addr = 1
##tcp_client_ports = 1024-65535
tcp_client_max_idle = 0
transport = TCP
krb5_principal = auditd
##krb5_key_file = /etc/audit/audit.key
distribute_network = no
q_depth = 2000
overflow_action = SYSLOG
max_restarts = 10
plugin_dir = /etc/audit/plugins.d
end_of_event_timeout = 2
`

func TestAuditdConfStock(t *testing.T) {
	c, err := config.ParseAuditdConf([]byte(stock), "/etc/audit/auditd.conf", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Path != "/var/log/audit/audit.log" || c.Log.Format != hostlog.Enriched || c.Log.Flush != hostlog.FlushIncrementalAsync ||
		c.Log.MaxLogFile != 8<<20 || c.Log.NumLogs != 5 || c.Log.SpaceLeftAction.Kind != hostlog.ActionSyslog ||
		c.Log.AdminSpaceLeftAction.Kind != hostlog.ActionSuspend || c.NameFormat != "none" || !c.LocalEvents {
		t.Errorf("parsed %+v", c)
	}
	if len(c.Warnings) != 1 {
		t.Fatalf("warnings %q, want one", c.Warnings)
	}
	for _, k := range []string{"verify_email (line 20)", "action_mail_acct", "use_libwrap", "tcp_listen_queue", "tcp_max_per_addr",
		"tcp_client_max_idle", "transport", "krb5_principal", "distribute_network",
		"end_of_event_timeout (line 40)"} {
		if !strings.Contains(c.Warnings[0], k) {
			t.Errorf("warning %q does not name %s", c.Warnings[0], k)
		}
	}
	if strings.Contains(c.Warnings[0], "tcp_listen_port") || strings.Contains(c.Warnings[0], "name ") {
		t.Errorf("warning %q names a commented-out option", c.Warnings[0])
	}
}

func TestAuditdConfSyntax(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"spaces", "   flush   =   data   \n"},
		{"case of names and values", "FLUSH = Data\n"},
		{"comment lines", "# flush = sync\n  #flush = sync\n\n\nflush = data\n"},
		{"no final newline", "flush = data"},
		{"crlf", "flush = data\r\n"},
		{"last of a duplicate wins", "flush = sync\nflush = data\n"},
	} {
		c, err := config.ParseAuditdConf([]byte(tc.src), "/etc/audit/auditd.conf", nil, "")
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.Log.Flush != hostlog.FlushData {
			t.Errorf("%s: flush = %v, want data", tc.name, c.Log.Flush)
		}
	}
	// 158 characters is the longest line auditd reads.
	edge := "log_file = /var/log/" + strings.Repeat("a", 158-20)
	if c, err := config.ParseAuditdConf([]byte(edge+"\n"), "/etc/audit/auditd.conf", nil, ""); err != nil || c.Log.Path != edge[len("log_file = "):] {
		t.Errorf("a 158-character line: %v", err)
	}
	c, err := config.ParseAuditdConf([]byte("disk_full_action = EXEC /usr/local/sbin/full\nlog_file = logs/audit.log\n"), "/etc/audit/auditd.conf", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.DiskFullAction != (hostlog.Action{Kind: hostlog.ActionExec, Exec: "/usr/local/sbin/full"}) || c.Log.Path != "/etc/audit/logs/audit.log" {
		t.Errorf("exec action %+v, log_file %q", c.Log.DiskFullAction, c.Log.Path)
	}
}

func TestAuditdConfErrors(t *testing.T) {
	long := "log_file = /var/log/" + strings.Repeat("a", 159-20) + "\n" // 159 characters
	if len(long) != 160 {
		t.Fatal(len(long))
	}
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"flush = sometimes\n", []string{`auditd.conf:1:9: flush: "sometimes" is not one of none`}},
		{"log_file = /a\nlog_fiel = /b\n", []string{`auditd.conf:2:1: unknown option "log_fiel"; did you mean log_file?`}},
		{"foo = bar\n", []string{`auditd.conf:1:1: unknown option "foo"`}},
		{"flush=data\n", []string{`auditd.conf:1:1: write "flush=data" with spaces around =`}},
		{"flush data\n", []string{`auditd.conf:1:1: missing " = " after "flush"`}},
		{"flush\t=\tdata\n", []string{`auditd.conf:1:1: write "flush\t=\tdata" with spaces around =`, "a tab is part of a word"}},
		{"flush\t= data\n", []string{`auditd.conf:1:1: write "flush\t=" with spaces around =`, "a tab is part of a word"}},
		{"flush =\n", []string{`auditd.conf:1:7: flush has no value`}},
		{"flush = data # fast enough\n", []string{`auditd.conf:1:14: flush takes one value; "#": auditd.conf has no comments after a value`}},
		{"freq = 20 30\n", []string{`auditd.conf:1:11: freq takes one value; "30" is one word too many`}},
		{"disk_full_action = exec /a b\n", []string{`auditd.conf:1:28: disk_full_action takes one value; "b" is one word too many`}},
		{"freq = 0\nnum_logs = many\n", []string{`auditd.conf:1:8: freq: "0"`, `auditd.conf:2:12: num_logs: "many"`}},
		{"space_left_action = email\n", []string{`auditd.conf:1:21: space_left_action: email is not supported by auditd-ns`}},
		{"containers_dir = /etc/auditd-ns/containers\n", []string{`auditd.conf:1:1: containers_dir is an auditd-ns setting, not an auditd.conf option: set it in /etc/audit/auditd-ns.yaml`}},
		{"backlog_limit = 8192\n", []string{`auditd.conf:1:1: backlog_limit is an auditd-ns setting`}},
		{"name_format = user\n", []string{`auditd.conf:1:1: name_format user needs name`}},
		{long, []string{`auditd.conf:1:1: line longer than 158 characters`}},
	} {
		_, err := config.ParseAuditdConf([]byte(tc.src), "/etc/audit/auditd.conf", nil, "")
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

func TestAuditdConfSide(t *testing.T) {
	side := `containers_dir: containers
audit_rules: /etc/audit/audit.rules
backlog_limit: 8192
rules_on_exit: delete
control_socket: /run/x/control.sock
`
	c, err := config.ParseAuditdConf([]byte(stock), "/etc/audit/auditd.conf", []byte(side), "/etc/audit/auditd-ns.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.ContainersDir != "/etc/audit/containers" || c.AuditRules != "/etc/audit/audit.rules" || *c.BacklogLimit != 8192 ||
		c.RulesOnExit != "delete" || c.ControlSocket != "/run/x/control.sock" || c.Log.Format != hostlog.Enriched {
		t.Errorf("parsed %+v", c)
	}
	if w := c.Where("audit_rules"); w != "/etc/audit/auditd-ns.yaml:2:1" {
		t.Errorf("Where(audit_rules) = %q", w)
	}
	if w := c.Where("flush"); w != "/etc/audit/auditd.conf:10:1" {
		t.Errorf("Where(flush) = %q", w)
	}
	for _, tc := range []struct{ side, want string }{
		{"log_file: /x/audit.log\n", `auditd-ns.yaml:1:1: log_file is an auditd.conf option: set it in /etc/audit/auditd.conf`},
		{"q_depth: 10\n", `auditd-ns.yaml:1:1: q_depth is an auditd.conf option: set it in /etc/audit/auditd.conf`},
		{"distribute_network: no\n", `auditd-ns.yaml:1:1: distribute_network is an auditd.conf option that auditd-ns does not implement`},
		{"containers_dri: /x\n", `auditd-ns.yaml:1:1: unknown option "containers_dri"`},
		{"listen: [\n", `auditd-ns.yaml:1: yaml: `},
		{"local_evnts: no\n", `unknown option`},
	} {
		_, err := config.ParseAuditdConf([]byte(stock), "/etc/audit/auditd.conf", []byte(tc.side), "/etc/audit/auditd-ns.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %s", tc.side, err, tc.want)
		}
	}
	// The listener needs local_events = no, which is auditd.conf's.
	c, err = config.ParseAuditdConf([]byte("local_events = no\n"), "/etc/audit/auditd.conf",
		[]byte("listen:\n  address: 127.0.0.1:6000\n"), "/etc/audit/auditd-ns.yaml")
	if err != nil || c.Listen == nil || c.LocalEvents {
		t.Errorf("local_events = no with listen: %+v, %v", c, err)
	}
	_, err = config.ParseAuditdConf([]byte("local_events = no\n"), "/etc/audit/auditd.conf", nil, "")
	if err == nil || !strings.Contains(err.Error(), "/etc/audit/auditd.conf:1:1: local_events: no needs a listen: source") {
		t.Errorf("local_events = no without listen: %v", err)
	}
}

func TestAuditdConfListenerHint(t *testing.T) {
	c, err := config.ParseAuditdConf([]byte("tcp_listen_port = 60\ndistribute_network = no\n"), "/etc/audit/auditd.conf", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "tcp_listen_port (line 1), distribute_network (line 2)") ||
		!strings.Contains(c.Warnings[0], "listen: in /etc/audit/auditd-ns.yaml") {
		t.Errorf("warnings %q", c.Warnings)
	}
}

func TestIsAuditdConf(t *testing.T) {
	for _, tc := range []struct {
		path, src string
		want      bool
	}{
		{"/etc/audit/auditd.conf", "", true},
		{"/x/auditd-ns.yaml", "flush = data\n", false},
		{"/x/auditd-ns.YML", "", false},
		{"/x/config", "# c\n\nflush = data\n", true},
		{"/x/config", "# c\nflush: data\n", false},
		{"/x/config", "", false},
	} {
		if got := config.IsAuditdConf(tc.path, []byte(tc.src)); got != tc.want {
			t.Errorf("IsAuditdConf(%q, %q) = %v", tc.path, tc.src, got)
		}
	}
}

func TestLoadAuditdConf(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "auditd.conf")
	if err := os.WriteFile(conf, []byte("flush = data\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(conf)
	if err != nil || c.Side != "" || c.Log.Flush != hostlog.FlushData {
		t.Fatalf("no side file: %+v, %v", c, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auditd-ns.yaml"), []byte("state_dir: state\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = config.Load(conf)
	if err != nil || c.Side != filepath.Join(dir, "auditd-ns.yaml") || c.StateDir != filepath.Join(dir, "state") {
		t.Fatalf("with side file: %+v, %v", c, err)
	}
	// auditd refuses a config everyone can write; so does auditd-ns.
	if err := os.Chmod(conf, 0o646); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(conf); err == nil || !strings.Contains(err.Error(), "writable by everyone") {
		t.Errorf("world-writable auditd.conf: %v", err)
	}
	fifo := filepath.Join(dir, "fifo.conf")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a FIFO: %v", err)
	}
	if _, err := config.Load(filepath.Join(dir, "none.conf")); !errors.Is(err, config.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
}

func TestExampleSideFileIsValid(t *testing.T) {
	side, err := os.ReadFile("../../configs/audit/auditd-ns.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.ParseAuditdConf([]byte(stock), "/etc/audit/auditd.conf", side, "/etc/audit/auditd-ns.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.AuditRules != "/etc/audit/audit.rules" || *c.BacklogLimit != 8192 || c.Log.Format != hostlog.Enriched {
		t.Errorf("example parsed as %+v", c)
	}
}

// The dispatcher's options are read: plugin_dir (auditd's default in
// auditd.conf, none in YAML), q_depth, overflow_action, max_restarts.
func TestAuditdConfPlugins(t *testing.T) {
	c, err := config.ParseAuditdConf([]byte("q_depth = 50\noverflow_action = SUSPEND\nmax_restarts = 0\n"), "/etc/audit/auditd.conf", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.PluginDir != "/etc/audit/plugins.d" || c.QDepth != 50 || c.OverflowAction != plugin.OverflowSuspend || c.MaxRestarts != 0 || len(c.Warnings) != 0 {
		t.Errorf("parsed %+v", c)
	}
	c, err = config.Parse([]byte("log_file: /x/audit.log\n"), "/etc/x.yaml")
	if err != nil || c.PluginDir != "" || c.QDepth != 2000 || c.OverflowAction != plugin.OverflowSyslog || c.MaxRestarts != 10 {
		t.Errorf("YAML defaults %+v %v", c, err)
	}
	for _, tc := range []struct{ src, want string }{
		{"overflow_action = single\n", "auditd.conf:1:19: overflow_action: SINGLE is not supported"},
		{"overflow_action = panic\n", `auditd.conf:1:19: overflow_action: "panic" is not one of ignore, syslog, suspend, halt`},
		{"q_depth = 0\n", `auditd.conf:1:11: q_depth: "0" is not a number of records from 1 to 99999`},
		{"max_restarts = -1\n", `auditd.conf:1:16: max_restarts: "-1" is not a number from 0 to 10000`},
	} {
		_, err := config.ParseAuditdConf([]byte(tc.src), "/etc/audit/auditd.conf", nil, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %s", tc.src, err, tc.want)
		}
	}
}
