package hostlog

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
)

// FlushMode is auditd's flush option.
type FlushMode int

// Flush modes, as in auditd.conf(5).
const (
	// FlushNone leaves data to the page cache; lines are handed to the
	// kernel in batches and whenever the daemon goes idle.
	FlushNone FlushMode = 1
	// FlushIncremental calls fdatasync every Freq records, in line.
	FlushIncremental FlushMode = 2
	// FlushIncrementalAsync calls fdatasync every Freq records in the
	// background, so the writer never waits for the disk.
	FlushIncrementalAsync FlushMode = 3
	// FlushData calls fdatasync after every record.
	FlushData FlushMode = 4
	// FlushSync calls fsync after every record.
	FlushSync FlushMode = 5
)

// ActionKind is what to do when a threshold is crossed or an error happens.
type ActionKind int

// Actions, named as in auditd.conf(5).
const (
	ActionIgnore   ActionKind = 1
	ActionSyslog   ActionKind = 2
	ActionRotate   ActionKind = 3
	ActionKeepLogs ActionKind = 4
	ActionSuspend  ActionKind = 5
	ActionExec     ActionKind = 6
	// ActionHalt stops the daemon cleanly (auditd's halt would stop the
	// machine; a daemon in a container host must not).
	ActionHalt ActionKind = 7
)

// Action is an ActionKind and, for ActionExec, the program to run.
type Action struct {
	Kind ActionKind
	Exec string
}

func (a Action) String() string {
	switch a.Kind {
	case ActionIgnore:
		return "ignore"
	case ActionSyslog:
		return "syslog"
	case ActionRotate:
		return "rotate"
	case ActionKeepLogs:
		return "keep_logs"
	case ActionSuspend:
		return "suspend"
	case ActionExec:
		return "exec " + a.Exec
	case ActionHalt:
		return "halt"
	}
	return fmt.Sprintf("action(%d)", int(a.Kind))
}

// Space is a free-space threshold: an absolute number of bytes, or a
// percentage of the file system when Percent is set.
type Space struct {
	Bytes   uint64
	Percent float64
}

// Options configures a Writer. The zero value of each field means auditd's
// default, applied by Open.
type Options struct {
	// Path of the log file, clean and absolute. Its directory is created
	// with mode 0700 if missing; neither it nor the file may be a symlink.
	// The file and its rotated copies are opened, renamed and removed
	// through a descriptor of the directory, never by path.
	Path string
	// Discard, for write_logs = no, opens no file: records are counted as
	// written and dropped, and rotation and the space checks do nothing.
	Discard bool
	// Beneath, when set, confines the log (a container's file target): Path
	// must lie strictly inside it; Beneath is opened with no symlink
	// anywhere on its path, and Path's directory (made if missing), the
	// file and its rotated copies are reached from it with openat2
	// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS. The directory is held for the
	// Writer's life, so a directory swapped for a symlink later is never
	// followed.
	Beneath string
	// HoldDir, without Beneath, opens Path's directory by path once, at
	// Open, and holds it for the Writer's life (a container's file target
	// that the host admin named). False (the host log) reopens it by path
	// at every rotation and Reconfigure, as auditd does.
	HoldDir bool
	// Mode of a new log file. Zero means 0600.
	Mode uint32
	// Chown, when set, gives every log file opened (the current one and
	// each one rotation makes) to UID and GID (a container's file target
	// that a user-namespaced container reads).
	Chown    bool
	UID, GID int
	Format   Format
	// Node, when set, prefixes every line with "node=NODE ".
	Node  string
	Flush FlushMode
	// Freq is the record count between syncs for the incremental modes.
	// Zero means 50.
	Freq int
	// MaxLogFile is the size in bytes at which MaxLogFileAction runs.
	// Zero means no limit.
	MaxLogFile       int64
	MaxLogFileAction Action
	// NumLogs is how many files rotation keeps, the current one included.
	NumLogs              int
	SpaceLeft            Space
	SpaceLeftAction      Action
	AdminSpaceLeft       Space
	AdminSpaceLeftAction Action
	DiskFullAction       Action
	DiskErrorAction      Action
	// Halt is called (once) when an action says to stop the daemon.
	Halt func(reason string)
	// OnDaemon, when set, is given each of the daemon's own records
	// (DAEMON_START, DAEMON_ROTATE, ...) once it is written, as auditd
	// feeds them to its plugins too. It is called with the writer's lock
	// held and must not block.
	OnDaemon func(typ uint16, data []byte)
	// OnLine, when set, is given each line as the log has it (node=
	// included, no newline), once: a record's line before its ENRICHED
	// part, a line WriteLine appends as it is. A record is given even when
	// the log drops it (write_logs = no, suspended). It is called with
	// the writer's lock held, must not block, and must not keep line.
	OnLine func(line []byte)
	// Tap, when set, takes OnLine's place for the lines a RAW log keeps:
	// at each write of the buffer to the file (failed or not) it is given
	// the buffer, whole lines each with its newline, and returns the empty
	// buffer to fill next; it may keep the one it was given, which the
	// Writer no longer touches. Lines the log does not keep, and every
	// line of an ENRICHED log, still go to OnLine. It is called with the
	// writer's lock held and must not block.
	Tap func(lines []byte) []byte
	// Logger receives warnings and errors. Nil means no logging.
	Logger hclog.Logger
}

func (o *Options) setDefaults() {
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	if o.Format == 0 {
		o.Format = Raw
	}
	if o.Flush == 0 {
		o.Flush = FlushIncrementalAsync
	}
	if o.Freq <= 0 {
		o.Freq = 50
	}
	def := func(a *Action, k ActionKind) {
		if a.Kind == 0 {
			a.Kind = k
		}
	}
	def(&o.MaxLogFileAction, ActionRotate)
	def(&o.SpaceLeftAction, ActionSyslog)
	def(&o.AdminSpaceLeftAction, ActionSuspend)
	def(&o.DiskFullAction, ActionSuspend)
	def(&o.DiskErrorAction, ActionSuspend)
	if o.NumLogs == 0 {
		o.NumLogs = 5
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Halt == nil {
		o.Halt = func(string) {}
	}
}
