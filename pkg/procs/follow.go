package procs

import "time"

// Until a cgroup directory is registered nothing is attributed, and
// reading /proc/PID/cgroup at every fork and exec of the host (a few
// tens of µs each, 4% of the daemon's CPU on a busy build host) buys
// nothing. So the tracker goes idle while Follow says no directory is
// registered and no View is made: a fork still takes its parent's places
// in the history and an exec, an exit and a write to a cgroup.procs are
// handled as before, but forks and execs are not read. When a directory
// is registered again, Run sweeps /proc first (as after lost events), so
// that every live process is read once before it reads forks and execs
// again.

// Follow tells the tracker the cgroup directories now registered (the
// router's, at each change). Until it is first called the tracker reads
// every fork and exec. Run acts on it at its next wake-up, within
// watermarkEvery, before it handles the events waiting: the watermark
// (Settled) moves past a registration only once the sweep is done.
func (t *Tracker) Follow(dirs []string) {
	t.idleAsked.Store(len(dirs) == 0)
}

// followed brings Run's goroutine in line with Follow and the Views:
// idle when nothing is registered, else reading, after a sweep of /proc
// when it was idle.
func (t *Tracker) followed() {
	idle := t.idleAsked.Load()
	if vl := t.views.Load(); vl != nil && len(vl.views) > 0 {
		idle = false
	}
	switch {
	case idle && !t.idle:
		t.idle = true
		clear(t.unverified) // not read again at their exits
	case !idle && t.idle:
		t.idle = false
		t.lastSweep = time.Now()
		t.resweeps.Add(1)
		alive := t.seed()
		t.table.sweep(alive, t.now())
	}
	t.idleNow.Store(t.idle)
}
