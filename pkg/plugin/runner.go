package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/syslog"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Overflow is auditd's overflow_action: what a full plugin queue does
// besides dropping the record it cannot take and counting it.
type Overflow int

const (
	// OverflowIgnore drops and counts.
	OverflowIgnore Overflow = iota
	// OverflowSyslog drops, counts and warns (daemon log and syslog),
	// at most once every 10 seconds per plugin.
	OverflowSyslog
	// OverflowSuspend stops feeding the plugin whose queue overflowed
	// until the next reload (SIGHUP); what it misses is counted.
	OverflowSuspend
	// OverflowHalt stops the daemon cleanly (through Options.Halt).
	OverflowHalt
)

func (o Overflow) String() string {
	return [...]string{"ignore", "syslog", "suspend", "halt"}[o]
}

// DefaultQDepth and DefaultMaxRestarts are auditd's defaults of q_depth
// and max_restarts.
const (
	DefaultQDepth      = 2000
	DefaultMaxRestarts = 10
)

// Options are the settings every plugin shares (auditd.conf's).
type Options struct {
	// QDepth is each plugin's queue length in records (q_depth).
	QDepth      int
	Overflow    Overflow
	MaxRestarts int // max_restarts
	// Line appends the line of a record, newline included, as the host
	// log writes it (node= prefix, ENRICHED part): what auditd feeds its
	// plugins. It is called on the plugins' goroutines.
	Line func(dst []byte, typ uint16, data []byte) []byte
	Log  hclog.Logger
	// Halt stops the daemon (overflow_action halt). It is called on the
	// goroutine of the Submit that overflowed, once per plugin, and must
	// not block.
	Halt func(reason string)
	// StopGrace bounds how long Stop gives a plugin to take what is
	// queued and exit, before SIGTERM and SIGKILL (default 3s, as auditd
	// gives its plugins).
	StopGrace time.Duration
}

// Stat is one plugin's state and counters.
type Stat struct {
	Name, Path string
	// State is running, starting, stopped, failed (gave up after
	// max_restarts or could not start), suspended (overflow_action
	// suspend), or for af_unix listening or connected.
	State string
	PID   int
	// Queued records wait in the plugin's queue of QDepth.
	Queued, QDepth int
	// Sent records were written to the plugin. Dropped were not: the
	// queue was full, or the plugin suspended, failed or (af_unix) had
	// no reader.
	Sent, Dropped uint64
	Restarts      int
	LastError     string
}

// Runner runs a set of plugins. Every goroutine it starts (one per
// plugin, and per plugin the wait on its program or the accept loop of its
// socket) ends before Stop returns.
type Runner struct {
	opt     Options // Overflow and MaxRestarts are read from the atomics below
	plugins atomic.Pointer[[]*plugin]
	mu      sync.Mutex // serialises Reload and Stop
	// overflow and maxRestarts are opt's, replaced by Reload.
	overflow    atomic.Int32
	maxRestarts atomic.Int32
	wg          sync.WaitGroup // the goroutines the Runner started
}

// goroutine runs f on a goroutine that Stop waits for.
func (r *Runner) goroutine(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// Start starts the plugins of confs. The caller owns the Runner: it must
// Stop it, which ends every goroutine Start started.
func Start(confs []*Conf, opt Options) *Runner {
	if opt.QDepth <= 0 {
		opt.QDepth = DefaultQDepth
	}
	if opt.Log == nil {
		opt.Log = hclog.NewNullLogger()
	}
	if opt.StopGrace == 0 {
		opt.StopGrace = 3 * time.Second
	}
	r := &Runner{opt: opt}
	r.overflow.Store(int32(opt.Overflow))
	r.maxRestarts.Store(int32(opt.MaxRestarts))
	ps := make([]*plugin, 0, len(confs))
	for _, c := range confs {
		ps = append(ps, r.start(c))
	}
	r.plugins.Store(&ps)
	return r
}

func (r *Runner) start(c *Conf) *plugin {
	p := &plugin{conf: c, r: r, log: r.opt.Log.Named(c.Name), q: make(chan *item, r.opt.QDepth),
		stop: make(chan struct{}), done: make(chan struct{}), state: "starting"}
	if c.Builtin() {
		r.goroutine(p.runAFUnix)
	} else {
		r.goroutine(p.runProgram)
	}
	return p
}

// item is one record, shared by every plugin's queue; never modified.
type item struct {
	typ  uint16
	data []byte
}

// Submit hands one record to every plugin. It never blocks: a plugin
// whose queue is full loses the record, which is counted, and its
// overflow_action runs. Submit may be called from several goroutines
// (the daemon's own records come from others than the receiving one).
func (r *Runner) Submit(typ uint16, data []byte) {
	if r == nil {
		return
	}
	ps := *r.plugins.Load()
	if len(ps) == 0 {
		return
	}
	it := &item{typ, bytes.Clone(data)}
	for _, p := range ps {
		if p.suspended.Load() {
			p.dropped.Add(1)
			continue
		}
		select {
		case p.q <- it:
		default:
			p.overflow()
		}
	}
}

// Stats returns every plugin's state, in name order.
func (r *Runner) Stats() []Stat {
	if r == nil {
		return nil
	}
	ps := *r.plugins.Load()
	out := make([]Stat, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.stat())
	}
	return out
}

// Reload replaces the plugins with those of confs, as auditd's SIGHUP
// does: a plugin whose file is unchanged keeps running (a program gets
// SIGHUP) and is resumed if suspended; a new or changed one starts; one
// that is gone or changed stops. opt's Overflow and MaxRestarts apply
// from now on; a queue keeps its length.
func (r *Runner) Reload(confs []*Conf, overflow Overflow, maxRestarts int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.overflow.Store(int32(overflow))
	r.maxRestarts.Store(int32(maxRestarts))
	old := map[string]*plugin{}
	for _, p := range *r.plugins.Load() {
		old[p.conf.Name] = p
	}
	ps := make([]*plugin, 0, len(confs))
	for _, c := range confs {
		if p, ok := old[c.Name]; ok && same(p.conf, c) {
			delete(old, c.Name)
			p.suspended.Store(false)
			p.hup()
			ps = append(ps, p)
			continue
		}
		ps = append(ps, r.start(c))
	}
	r.plugins.Store(&ps)
	gone := make([]*plugin, 0, len(old))
	for _, p := range old {
		gone = append(gone, p)
	}
	r.shutdown(gone)
	for _, p := range gone {
		if p.stopErr != nil {
			p.log.Warn("stopping a plugin at reload", "error", p.stopErr)
		}
	}
}

func same(a, b *Conf) bool {
	if a.Path != b.Path || a.Socket != b.Socket || a.Mode != b.Mode || len(a.Args) != len(b.Args) {
		return false
	}
	for i := range a.Args {
		if a.Args[i] != b.Args[i] {
			return false
		}
	}
	return true
}

// Stop gives each plugin what is queued (within StopGrace), closes its
// input and ends it, and returns when every goroutine of the Runner has
// ended. Its error is what could not be torn down (an af_unix socket file
// left behind); a plugin's own failures are in its Stat, as auditd runs on
// without a failed plugin. Submit must not be called during or after Stop.
func (r *Runner) Stop() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := *r.plugins.Load()
	r.shutdown(ps)
	empty := []*plugin{}
	r.plugins.Store(&empty)
	r.wg.Wait()
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.stopErr)
	}
	return errors.Join(errs...)
}

type plugin struct {
	conf *Conf
	r    *Runner
	log  hclog.Logger
	q    chan *item
	stop chan struct{} // closed by shutdown
	done chan struct{} // closed when the plugin's goroutine ends
	// stopErr is what the plugin's goroutine could not tear down; read
	// once done is closed.
	stopErr error

	sent, dropped atomic.Uint64
	suspended     atomic.Bool
	lastWarn      atomic.Int64 // unix nanoseconds of the last overflow warning

	mu       sync.Mutex // guards what follows
	state    string
	pid      int
	proc     *os.Process
	unblock  func() // breaks a write that blocks (shutdown)
	restarts int
	lastErr  string
}

func (p *plugin) set(f func(p *plugin)) {
	p.mu.Lock()
	f(p)
	p.mu.Unlock()
}

func (p *plugin) stat() Stat {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stat{Name: p.conf.Name, Path: p.conf.Path, State: p.state, PID: p.pid, Queued: len(p.q), QDepth: cap(p.q),
		Sent: p.sent.Load(), Dropped: p.dropped.Load(), Restarts: p.restarts, LastError: p.lastErr}
	if p.suspended.Load() {
		st.State = "suspended"
	}
	if p.conf.Builtin() {
		st.Path = p.conf.Path + " " + p.conf.Socket
	}
	return st
}

func (p *plugin) fail(err error) {
	p.set(func(p *plugin) { p.lastErr = err.Error() })
}

// overflow counts a record the full queue could not take and runs
// overflow_action.
func (p *plugin) overflow() {
	n := p.dropped.Add(1)
	opt := &p.r.opt
	switch Overflow(p.r.overflow.Load()) {
	case OverflowSyslog:
		now := time.Now().UnixNano()
		if last := p.lastWarn.Load(); now-last < int64(10*time.Second) || !p.lastWarn.CompareAndSwap(last, now) {
			return
		}
		msg := fmt.Sprintf("plugin %s: queue full (q_depth %d), dropping records; %d dropped so far", p.conf.Name, cap(p.q), n)
		p.log.Warn("queue full, dropping records", "q_depth", cap(p.q), "dropped", n)
		if s, err := syslog.New(syslog.LOG_WARNING|syslog.LOG_DAEMON, "auditd-ns"); err == nil {
			s.Warning(msg)
			s.Close()
		}
	case OverflowSuspend:
		if p.suspended.CompareAndSwap(false, true) {
			p.log.Error("queue full: suspending the plugin until the next reload (overflow_action suspend)", "q_depth", cap(p.q))
		}
	case OverflowHalt:
		if p.suspended.CompareAndSwap(false, true) && opt.Halt != nil {
			opt.Halt(fmt.Sprintf("plugin %s: queue full (overflow_action halt)", p.conf.Name))
		}
	}
}

// shutdown ends the plugins ps, all at once, and waits for their
// goroutines. A plugin that does not take what is queued within the grace
// is cut off: its pending write is broken (and its program killed).
func (r *Runner) shutdown(ps []*plugin) {
	for _, p := range ps {
		select {
		case <-p.stop:
		default:
			close(p.stop)
		}
	}
	deadline := time.Now().Add(r.opt.StopGrace + time.Second)
	for _, p := range ps {
		select {
		case <-p.done:
			continue
		case <-time.After(time.Until(deadline)):
		}
		p.mu.Lock()
		unblock := p.unblock
		p.mu.Unlock()
		if unblock != nil {
			unblock()
		}
		<-p.done
	}
}

// stopping tells whether shutdown has begun.
func (p *plugin) stopping() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

func (p *plugin) hup() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		p.proc.Signal(syscall.SIGHUP)
	}
}

// next returns the next record, or nil when the plugin stops. Once stop
// is closed it returns what is still queued until the grace ends.
func (p *plugin) next(deadline *time.Time) *item {
	if deadline.IsZero() {
		select {
		case it := <-p.q:
			return it
		case <-p.stop:
			*deadline = time.Now().Add(p.r.opt.StopGrace)
		}
	}
	if time.Now().After(*deadline) {
		return nil
	}
	select {
	case it := <-p.q:
		return it
	default:
		return nil
	}
}

// drop counts what is left in the queue as dropped.
func (p *plugin) dropRest() {
	for {
		select {
		case <-p.q:
			p.dropped.Add(1)
		default:
			return
		}
	}
}

// child is one run of a program plugin.
type child struct {
	cmd    *exec.Cmd
	stdin  *os.File
	exited chan struct{}
}

// spawn starts the program as auditd does: argv is the path and args,
// the environment is empty, stdin is the pipe of records, stdout and
// stderr are /dev/null, no other descriptor is inherited.
func (p *plugin) spawn() (*child, error) {
	if err := CheckProgram(p.conf.Path); err != nil {
		return nil, err
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(p.conf.Path, p.conf.Args...)
	cmd.Env = []string{}
	cmd.Stdin = rd
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	rd.Close()
	if err != nil {
		wr.Close()
		return nil, err
	}
	c := &child{cmd: cmd, stdin: wr, exited: make(chan struct{})}
	p.r.goroutine(func() {
		cmd.Wait()
		p.set(func(p *plugin) {
			if p.proc == cmd.Process {
				p.state, p.pid, p.proc = "exited", 0, nil
				p.lastErr = "exited (" + cmd.ProcessState.String() + "); restarted at the next record"
			}
		})
		close(c.exited)
	})
	p.set(func(p *plugin) {
		p.state, p.pid, p.proc = "running", cmd.Process.Pid, cmd.Process
		p.unblock = func() { wr.Close(); cmd.Process.Kill() }
	})
	p.log.Info("plugin started", "path", p.conf.Path, "pid", cmd.Process.Pid)
	return c, nil
}

// end closes the child's input and waits for it to exit: grace, then
// SIGTERM, then SIGKILL.
func (p *plugin) end(c *child, grace time.Duration) {
	c.stdin.Close()
	select {
	case <-c.exited:
		return
	case <-time.After(grace):
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return
	case <-time.After(2 * time.Second):
	}
	c.cmd.Process.Kill()
	<-c.exited
}

// runProgram feeds a program plugin until stop. A program that dies is
// restarted when the next record comes, as auditd does, up to
// max_restarts times; the record that found it dead is written to the
// new one.
func (p *plugin) runProgram() {
	defer close(p.done)
	var c *child
	var deadline time.Time
	var buf []byte
	failed := false
	defer func() {
		if c != nil {
			// Let it read what it was given: EOF ends audisp-remote
			// and audisp-syslog once they have sent it.
			p.end(c, p.r.opt.StopGrace)
		}
		p.set(func(p *plugin) { p.state, p.pid, p.proc = "stopped", 0, nil })
		p.dropRest()
	}()
	start := func() bool {
		var err error
		if c, err = p.spawn(); err != nil {
			c = nil
			failed = true
			p.fail(err)
			p.set(func(p *plugin) { p.state = "failed" })
			p.log.Error("could not start the plugin; continuing without it", "path", p.conf.Path, "error", err)
			return false
		}
		return true
	}
	start()
	for {
		it := p.next(&deadline)
		if it == nil {
			return
		}
		if failed {
			p.dropped.Add(1)
			continue
		}
		var n uint64
		buf, n = p.batch(buf[:0], it)
		for try := 0; ; try++ {
			_, err := c.stdin.Write(buf)
			if err == nil {
				p.sent.Add(n)
				break
			}
			p.dropped.Add(n)
			if p.stopping() {
				break // no restart
			}
			restart := p.died(c, err)
			c = nil
			if !restart {
				failed = true
				break
			}
			if !start() || try > 0 {
				break
			}
			p.dropped.Add(-n) // the retry may still send them
		}
	}
}

// batchSize bounds the lines given to one write.
const batchSize = 64 << 10

// batch appends the line of it, and of the records queued behind it up to
// batchSize, to buf: one write for a burst. It returns how many records
// buf holds.
func (p *plugin) batch(buf []byte, it *item) ([]byte, uint64) {
	buf = p.r.opt.Line(buf, it.typ, it.data)
	n := uint64(1)
	for len(buf) < batchSize {
		select {
		case it := <-p.q:
			buf = p.r.opt.Line(buf, it.typ, it.data)
			n++
		default:
			return buf, n
		}
	}
	return buf, n
}

// died handles a write that failed because the program is gone: it says
// whether the program may be restarted (max_restarts not reached).
func (p *plugin) died(c *child, err error) bool {
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
	var restarts int
	p.set(func(p *plugin) {
		p.restarts++
		restarts = p.restarts
		p.lastErr = fmt.Sprintf("terminated unexpectedly (%v; %s)", err, c.cmd.ProcessState)
		p.pid, p.proc = 0, nil
	})
	if max := int(p.r.maxRestarts.Load()); restarts > max {
		p.log.Error("plugin terminated unexpectedly and has exceeded max_restarts; continuing without it",
			"path", p.conf.Path, "restarts", restarts-1, "max_restarts", max)
		p.set(func(p *plugin) { p.state = "failed" })
		return false
	}
	p.log.Warn("plugin terminated unexpectedly; restarting it", "path", p.conf.Path, "status", c.cmd.ProcessState.String(), "restarts", restarts)
	return true
}

// runAFUnix is auditd's builtin af_unix: a stream socket at the
// configured path, one reader at a time, fed the same lines; records that
// come while no reader is connected are dropped (and counted), as auditd
// drops them.
func (p *plugin) runAFUnix() {
	defer close(p.done)
	defer p.dropRest()
	ln, err := listenUnix(p.conf.Socket, p.conf.Mode)
	if err != nil {
		p.fail(err)
		p.set(func(p *plugin) { p.state = "failed" })
		p.log.Error("could not open the af_unix socket; continuing without it", "socket", p.conf.Socket, "error", err)
		var deadline time.Time
		for p.next(&deadline) != nil {
			p.dropped.Add(1)
		}
		return
	}
	p.set(func(p *plugin) { p.state = "listening" })
	p.log.Info("af_unix socket listening", "socket", p.conf.Socket)
	conns := make(chan net.Conn)
	ctx, cancel := context.WithCancel(context.Background())
	accepted := make(chan struct{}) // closed when the accept loop ends
	p.r.goroutine(func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// The writer takes it at the next record: it is ready now.
			p.set(func(p *plugin) { p.state = "connected" })
			select {
			case conns <- c:
			case <-ctx.Done():
				c.Close()
				return
			}
		}
	})
	var conn net.Conn
	defer func() {
		cancel()
		ln.Close()
		<-accepted
		if conn != nil {
			conn.Close()
		}
		if err := os.Remove(p.conf.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			p.stopErr = fmt.Errorf("plugin %s: removing its socket: %w", p.conf.Name, err)
		}
		p.set(func(p *plugin) { p.state = "stopped" })
	}()
	var deadline time.Time
	var buf []byte
	for {
		it := p.next(&deadline)
		if it == nil {
			return
		}
		if conn == nil {
			select {
			case conn = <-conns:
				cn := conn
				p.set(func(p *plugin) { p.unblock = func() { cn.SetWriteDeadline(time.Now()) } })
			default:
				p.dropped.Add(1)
				continue
			}
		}
		var n uint64
		buf, n = p.batch(buf[:0], it)
		if !deadline.IsZero() {
			conn.SetWriteDeadline(deadline)
		}
		if _, err := conn.Write(buf); err != nil {
			p.dropped.Add(n)
			conn.Close()
			conn = nil
			p.set(func(p *plugin) { p.state = "listening" })
			continue
		}
		p.sent.Add(n)
	}
}

// listenUnix replaces whatever is at path with a listening stream socket
// of the given mode (0: the umask's), as auditd's af_unix does.
func listenUnix(path string, mode os.FileMode) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; not replacing it", path)
		}
		os.Remove(path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	if mode != 0 {
		if err := os.Chmod(path, mode); err != nil {
			ln.Close()
			os.Remove(path)
			return nil, err
		}
	}
	return ln, nil
}
