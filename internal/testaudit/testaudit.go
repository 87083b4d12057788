// Package testaudit holds what tests and benchmarks need to run the real
// audit programs beside auditd-ns without touching the host: a private
// audisp-remote configuration and the command that runs audisp-remote with
// it. It is for tests only.
package testaudit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// AudispRemoteConf is an audisp-remote.conf that sends to 127.0.0.1:port in
// the managed format, one record at a time (audisp-remote has no window),
// keeps up to queueDepth records queued in queueFile's place and, when its
// input ends, flushes its queue and exits.
func AudispRemoteConf(port int, queueFile string, queueDepth int) string {
	return fmt.Sprintf(`remote_server = 127.0.0.1
port = %d
transport = tcp
queue_file = %s
mode = immediate
queue_depth = %d
format = managed
network_retry_time = 1
max_tries_per_record = 3
max_time_per_record = 5
heartbeat_timeout = 0
network_failure_action = stop
disk_low_action = ignore
disk_full_action = warn_once
disk_error_action = warn_once
remote_ending_action = reconnect
generic_error_action = syslog
generic_warning_action = syslog
queue_error_action = stop
overflow_action = syslog
startup_failure_action = warn_once_continue
`, port, queueFile, queueDepth)
}

// AudispRemote returns the command that runs the audisp-remote at bin with
// the configuration file conf. audisp-remote 3.0.9 takes no options and
// reads only /etc/audit/audisp-remote.conf, so the command bind-mounts conf
// over that path (and a tmpfs over /run) inside a private mount namespace;
// the host's files are untouched. Needs root and unshare(1).
func AudispRemote(ctx context.Context, bin, conf string) *exec.Cmd {
	script := `mount --bind "$1" /etc/audit/audisp-remote.conf && mount -t tmpfs tmpfs /run && exec "$0"`
	return exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, bin, conf)
}

// TenantAuditdConf is the auditd.conf of a tenant's real auditd: no local
// events (it never touches the kernel's audit state), receiving auditd's
// remote-logging protocol on tcp_listen_port from any source port, with
// use_libwrap off so the host's hosts.allow/deny do not matter, and every
// space action ignored. It writes its log to logFile.
func TenantAuditdConf(logFile string, port int, pluginDir string) string {
	return fmt.Sprintf(`local_events = no
write_logs = yes
log_file = %s
log_format = RAW
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 4096
num_logs = 2
max_log_file_action = IGNORE
space_left = 2
space_left_action = IGNORE
admin_space_left = 1
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
priority_boost = 0
name_format = NONE
tcp_listen_port = %d
tcp_listen_queue = 5
tcp_max_per_addr = 1
use_libwrap = no
tcp_client_max_idle = 0
distribute_network = no
plugin_dir = %s
q_depth = 2000
`, logFile, port, pluginDir)
}

// CPUSeconds is the user and system time the process pid has used, from
// /proc/PID/stat.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("reading /proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on Linux.
const clockTicks = 100

// Terminate ends a process the test started with SIGTERM (auditd flushes
// its log on it, and ignores SIGINT), kills it if it has not exited after
// grace, and returns its exit error, or an error saying it was killed. A
// process already waited for is left alone.
func Terminate(cmd *exec.Cmd, grace time.Duration) error {
	if cmd == nil || cmd.Process == nil || cmd.ProcessState != nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s ignored SIGTERM for %v; killed", cmd.Path, grace)
	}
}
