// Package daemon is the host daemon: it registers with the kernel as its
// audit daemon, applies the kernel settings and rules, writes every record to
// the host log before anything else sees it, and handles auditd's signals.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/auditd-ns/auditd-ns/internal/buildinfo"
	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/internal/sdnotify"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
	"github.com/auditd-ns/auditd-ns/pkg/deliver"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/jetstream"
	"github.com/auditd-ns/auditd-ns/pkg/plugin"
	"github.com/auditd-ns/auditd-ns/pkg/procs"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/router"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// Daemon is a running host daemon.
type Daemon struct {
	log hclog.Logger
	// conf is the running configuration; reload swaps it while control
	// goroutines read it, so it is read through cfg, once per use.
	conf   atomic.Pointer[config.Config]
	rules  *auditrule.File // read and replaced only on the signal-handling goroutine
	ctl    *source.Control // safe for concurrent use
	kern   *source.Kernel
	hlog   *hostlog.Writer
	halt   context.CancelFunc
	router *router.Router
	conts  *deliver.Containers
	export *export // the host log's JetStream export, nil for none
	// consumer is consume mode's JetStream consumer, for the status.
	consumer atomic.Pointer[jetstream.Consumer]

	// The daemon's services (router, tracker, control servers) run in g,
	// under life: stopServices stops them in order, and g.Wait returns
	// their errors. life is the daemon's context without its cancellation:
	// the services outlive a stop signal by the shutdown's drain, then
	// stopServices cancels life last.
	g             errgroup.Group
	life          context.Context
	lifeStop      context.CancelFunc
	routerStop    context.CancelFunc
	routerDone    chan struct{}
	tracker       *procs.Tracker // attributes records to cgroups on a stock kernel
	idTracker     *procs.Tracker // on a patched kernel: follows contid containers' processes for their views
	idTrackerStop context.CancelFunc
	trackerStop   context.CancelFunc
	controlStop   context.CancelFunc
	scoped        scoped
	views         views // the containers' namespaces (view.go)
	started       time.Time
	namespaces    namespaceBook
	chains        chainBook // contid ancestry from the kernel's op=set records
	stats         Stats
	statMu        sync.Mutex    // guards stats, except Records
	records       atomic.Uint64 // Stats.Records, counted in pass
	plugins       *plugin.Runner
	pluginLine    atomic.Pointer[lineFunc]      // the plugins' line format (plugins.go)
	pluginFeed    atomic.Pointer[plugin.Runner] // plugins, for the host log's own records (hostlog.Options.OnDaemon)
}

// Stats is what the daemon reports about itself and the kernel.
type Stats struct {
	Records      uint64
	ReceiveError uint64
	// Foreign counts netlink messages dropped because another process,
	// not the kernel, sent them to the daemon's socket.
	Foreign uint64
	// RouterOverflow is the router's overflow when last polled.
	RouterOverflow uint64
	KernelLost     uint32
	Backlog        uint32
	BacklogWait    uint32 // the kernel's backlog_wait_time_actual

	LastPoll time.Time
}

// cfg returns the running configuration. A reload replaces it as a whole,
// never in place: callers keep the pointer for one use and never modify it.
func (d *Daemon) cfg() *config.Config { return d.conf.Load() }

// Load reads and validates the config and its audit.rules file without
// touching the system. It is what `check` runs and what `run` runs first.
func Load(path string) (*config.Config, *auditrule.File, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	kf := &auditrule.File{}
	if cfg.AuditRules != "" {
		if kf, err = auditrule.Load(cfg.AuditRules); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("%s: audit_rules: %s: no such file", cfg.Where("audit_rules"), cfg.AuditRules)
			}
			return nil, nil, err
		}
	}
	cfg.Warnings = append(cfg.Warnings, pluginWarnings(cfg)...)
	if cfg.ContainersDir != "" {
		cs, err := registry.LoadDir(cfg.ContainersDir)
		if err != nil {
			return nil, nil, err
		}
		if _, err := registry.Build(cs); err != nil {
			return nil, nil, err
		}
	}
	return cfg, kf, nil
}

// Run runs the daemon until ctx ends or an action halts it. It returns nil
// on a clean stop.
func Run(ctx context.Context, cfg *config.Config, kf *auditrule.File, log hclog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := newDaemon(ctx, cfg, log)
	defer d.lifeStop()
	d.rules, d.halt = kf, cancel
	// Catch the signals the daemon handles before starting: SIGHUP's
	// default is to exit, and one sent as soon as the daemon is up (a
	// reload, a log rotation) must wait to be handled, not kill it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	if cfg.Listen != nil {
		return d.runListener(ctx, sigs)
	}
	if cfg.ConsumeJetStream != nil {
		return d.runConsume(ctx, sigs)
	}
	if err := d.start(); err != nil {
		if d.kern != nil {
			d.kern.Unregister()
		}
		return errors.Join(err, d.stopServices(), d.closeAll())
	}
	d.notify(sdnotify.Ready)
	err := d.loop(ctx, sigs)
	d.notify(sdnotify.Stopping)
	return errors.Join(err, d.stop())
}

// newDaemon returns a daemon with cfg whose services will run under ctx
// (but for its cancellation: see Daemon.life).
func newDaemon(ctx context.Context, cfg *config.Config, log hclog.Logger) *Daemon {
	d := &Daemon{log: log, halt: func() {}}
	d.conf.Store(cfg)
	d.life, d.lifeStop = context.WithCancel(context.WithoutCancel(ctx))
	return d
}

// serve runs f as one of the daemon's services: its error is logged when
// it happens and returned by Run at the end.
func (d *Daemon) serve(name string, f func() error) {
	d.g.Go(func() error {
		if err := f(); err != nil {
			d.log.Error("a service of the daemon stopped", "service", name, "error", err)
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
}

// start checks the registration, opens the log, registers and configures
// the kernel.
func (d *Daemon) start() error {
	var err error
	if d.ctl, err = source.OpenControl(); err != nil {
		return err
	}
	if err := d.checkRegistered(); err != nil {
		return err
	}
	if d.hlog, err = d.openLog(d.cfg()); err != nil {
		return err
	}
	d.startPlugins()
	if d.export, err = d.startExport(d.cfg().ExportJetStream); err != nil {
		return err
	}
	if d.kern, err = source.OpenKernel(); err != nil {
		return err
	}
	if err := d.kern.Register(); err != nil {
		if errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("registering with the kernel: another audit daemon is registered (%s)", d.describeRegistered())
		}
		return fmt.Errorf("registering with the kernel: %w", err)
	}
	if st, err := d.ctl.Status(); err == nil {
		d.stats.KernelLost = st.Lost // only rises after this are new losses
		d.stats.BacklogWait = st.BacklogWaitTimeActual
	}
	boost(d.cfg().PriorityBoost, d.log)
	d.hlog.Daemon(record.TypeDaemonStart, d.startText())
	d.log.Info("registered as the kernel's audit daemon", "pid", os.Getpid(), "log", d.cfg().Log.Path)
	d.applyKernel(d.cfg(), d.rules)
	var kernel deliver.KernelRules
	switch err := d.ctl.ContainerIDs(); {
	case err == nil:
		kernel = d.ctl
	case !errors.Is(err, source.ErrNotSupported):
		return err
	}
	return d.startContainers(kernel, d.attributor(d.life, kernel != nil))
}

// startContainers starts the router, every registered container and the
// control servers. kernel loads container-scoped kernel rules (nil: the
// kernel cannot scope them).
func (d *Daemon) startContainers(kernel deliver.KernelRules, attr router.Attributor) error {
	var err error
	opt := router.Options{Attribute: attr}
	if attr != nil {
		// Give the process-events tracker time to see the processes
		// that events name before attributing them.
		opt.Delay = routeDelay
	}
	d.router = router.New(opt)
	store, err := registry.OpenStore(filepath.Join(d.cfg().StateDir, "containers"))
	if err != nil {
		return err
	}
	d.conts = d.newContainers(store, kernel)
	var cfg []*registry.Container
	if d.cfg().ContainersDir != "" {
		if cfg, err = registry.LoadDir(d.cfg().ContainersDir); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(d.life)
	d.routerStop, d.routerDone = cancel, make(chan struct{})
	d.serve("router", func() error {
		defer close(d.routerDone)
		return d.router.Run(ctx)
	})
	if err := d.conts.Load(d.life, cfg); err != nil {
		return err
	}
	mode := "cgroup"
	if attr == nil {
		mode = "contid"
	}
	d.started = time.Now()
	d.startControl()
	d.log.Info("containers started", "containers", d.conts.Len(), "attribution", mode, "control", d.cfg().ControlSocket)
	return nil
}

// checkRegistered refuses to start when a live daemon is registered. A
// stale registration (dead pid) is left for the kernel to replace.
func (d *Daemon) checkRegistered() error {
	st, err := d.ctl.Status()
	if err != nil {
		return fmt.Errorf("checking the kernel's audit daemon: %w", err)
	}
	if st.PID == 0 || int(st.PID) == os.Getpid() {
		return nil
	}
	if err := syscall.Kill(int(st.PID), 0); errors.Is(err, syscall.ESRCH) {
		d.log.Warn("taking over a stale registration of a dead audit daemon", "pid", st.PID)
		return nil
	}
	return fmt.Errorf("another audit daemon is registered with the kernel: %s; stop it first (the kernel was left untouched)", d.describeRegistered())
}

func (d *Daemon) describeRegistered() string {
	st, err := d.ctl.Status()
	if err != nil || st.PID == 0 {
		return "pid unknown"
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", st.PID))
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", st.PID))
	return fmt.Sprintf("pid %d, program %s (%s)", st.PID, strings.TrimSpace(string(comm)), exe)
}

func (d *Daemon) openLog(cfg *config.Config) (*hostlog.Writer, error) {
	opt := d.logOptions(cfg)
	w, err := hostlog.Open(opt)
	if err != nil {
		return nil, err
	}
	if opt.Mode == 0o640 {
		if err := chgrp(opt.Path, cfg.LogGroup); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

func (d *Daemon) logOptions(cfg *config.Config) hostlog.Options {
	opt := cfg.Log
	opt.Logger = d.log.Named("hostlog")
	opt.Node = nodeName(cfg)
	opt.OnDaemon = func(typ uint16, data []byte) { d.pluginFeed.Load().Submit(typ, data); d.export.flush() }
	if cfg.ExportJetStream != nil {
		opt.OnLine = func(line []byte) { d.export.add(line) }
		opt.Tap = func(lines []byte) []byte { return d.export.tap(lines) }
	}
	opt.Halt = func(reason string) {
		d.log.Error("stopping the daemon", "reason", reason)
		d.halt()
	}
	if cfg.LogGroup != "root" && cfg.LogGroup != "0" {
		opt.Mode = 0o640
	}
	opt.Discard = !cfg.WriteLogs
	return opt
}

func (d *Daemon) startText() string {
	var u unix.Utsname
	unix.Uname(&u)
	kernel := unix.ByteSliceToString(u.Release[:])
	format := "raw"
	if d.cfg().Log.Format == hostlog.Enriched {
		format = "enriched"
	}
	return record.DaemonStartText(buildinfo.Version(), format, kernel)
}

// closeAll ends what start opened when start fails half-way, and returns
// what could not be closed.
func (d *Daemon) closeAll() error {
	errs := []error{d.plugins.Stop(), d.export.stop(0)}
	if d.kern != nil {
		errs = append(errs, d.kern.Close())
	}
	if d.hlog != nil {
		errs = append(errs, d.hlog.Close())
	}
	if d.ctl != nil {
		errs = append(errs, d.ctl.Close())
	}
	return errors.Join(errs...)
}

// stopServices stops what the daemon started, in order: the control
// sockets, then the router (which routes what it still holds), then every
// container's delivery (given a moment to deliver; queues spool what is
// left), then the tracker. The JetStream export is stopped after
// DAEMON_END, which it exports too. It returns the
// services' errors. The sources have stopped: nothing ingests any more.
func (d *Daemon) stopServices() error {
	d.stopControl()
	if d.routerStop != nil {
		d.routerStop()
		<-d.routerDone
	}
	if d.conts != nil {
		d.conts.StopAll(2 * time.Second)
	}
	if d.trackerStop != nil {
		d.trackerStop()
	}
	if d.idTrackerStop != nil {
		d.idTrackerStop()
	}
	d.lifeStop()
	err := d.g.Wait()
	if d.tracker != nil {
		d.tracker.Close()
	}
	if d.idTracker != nil {
		d.idTracker.Close()
	}
	return err
}

func endText() string {
	return record.DaemonEndText()
}

// routeDelay is how long events wait before routing on stock kernels.
const routeDelay = 100 * time.Millisecond
