package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/internal/sdnotify"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// runListener runs listener mode: records come over auditd's remote-logging
// protocol (audisp-remote, or an upstream auditd-ns delivering a container's
// copies), each is written to this daemon's own complete log before it is
// acknowledged, and routed to the containers registered here exactly as the
// host daemon routes kernel records.
func (d *Daemon) runListener(ctx context.Context, sigs <-chan os.Signal) error {
	cfg := d.cfg()
	l, err := d.newListener(cfg.Listen)
	if err != nil {
		return err
	}
	if d.hlog, err = d.openLog(cfg); err != nil {
		return err
	}
	if d.export, err = d.startExport(cfg.ExportJetStream); err != nil {
		d.hlog.Close()
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen.Address)
	if err != nil {
		d.export.stop(0)
		d.hlog.Close()
		return fmt.Errorf("listening for remote-logging peers: %w", err)
	}
	// Records carry their chain (CONTAINER_ID) when the host kernel is
	// patched. On a stock kernel, containers registered here by cgroup are
	// found through the pid, which works when this daemon sees the host's
	// processes (a container sharing the host's pid namespace).
	if err := d.startContainers(nil, d.attributor(d.life, false)); err != nil {
		ln.Close()
		err = errors.Join(err, d.stopServices(), d.export.stop(0))
		d.hlog.Close()
		return err
	}
	d.hlog.Daemon(record.TypeDaemonStart, d.startText()+" source=listen")
	// Signals are handled on a goroutine of their own: the listener's
	// goroutines write the log, and the Writer takes its own lock.
	stopSignals := d.handleSignals(ctx, sigs)
	d.log.Info("listening for remote-logging peers", "address", ln.Addr().String(), "log", cfg.Log.Path, "tls", l.TLS != nil, "allow", fmt.Sprint(cfg.Listen.Allow))
	if l.TLS == nil && !cfg.Listen.Loopback() {
		d.log.Warn("listening beyond loopback without tls: peers are not authenticated, only their address is checked against allow, and records travel in clear", "address", cfg.Listen.Address)
	}
	d.notify(sdnotify.Ready)
	runErr := l.Run(ctx, ln)
	d.notify(sdnotify.Stopping)
	stopSignals()
	svcErr := d.stopServices()
	d.hlog.Daemon(record.TypeDaemonEnd, endText())
	return errors.Join(runErr, svcErr, d.export.stop(2*time.Second), d.hlog.Close())
}

// newListener builds the listener from its settings, loading the TLS
// certificates when they are set.
func (d *Daemon) newListener(lc *config.Listen) (*remote.Listener, error) {
	l := &remote.Listener{
		Handle:       func(line []byte) error { return d.ingestLine(line, true) },
		Logger:       d.log.Named("listener"),
		MaxPayload:   lc.MaxFrame,
		MaxConns:     lc.MaxConnections,
		Allow:        lc.Allow,
		FrameTimeout: lc.FrameTimeout,
		IdleTimeout:  lc.IdleTimeout,
	}
	if l.Allow == nil {
		l.Allow = []netip.Prefix{} // refuse all, never the library's default
	}
	if lc.IdleTimeout == 0 {
		l.IdleTimeout = -1 // idle_timeout: 0 is never
	}
	if lc.TLS != nil {
		var err error
		if l.TLS, err = remote.ServerTLS(lc.TLS.Cert, lc.TLS.Key, lc.TLS.ClientCA); err != nil {
			return nil, fmt.Errorf("listen.tls: %w", err)
		}
	}
	return l, nil
}

// ingestLine is the path of every record line received whole: from a
// listener's peer, or from a JetStream consumer. The line is written to
// the log first (and flushed with flush: the listener then acknowledges
// it, so an ACK means the record is in this log), then exported, then
// passed on as ingest does. The listener calls it from one goroutine per
// connection; the Writer, the export's queue and the router take their own
// locks.
func (d *Daemon) ingestLine(line []byte, flush bool) error {
	if err := d.hlog.WriteLine(line); err != nil {
		return err
	}
	if flush {
		if err := d.hlog.Flush(); err != nil {
			return err
		}
	}
	d.export.flush() // the Writer gave it the line (OnLine)
	if l, err := record.ParseLine(line); err == nil {
		d.pass(l.Type, l.Data) // of an ENRICHED line, the raw part
	}
	return nil
}
