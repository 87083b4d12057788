package daemon

import (
	"fmt"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
)

// applyKernel applies the config's kernel settings, then the rules file in
// auditctl's order: -D, settings, rules, and -e last (it may lock).
// Failures are logged and counted; the daemon keeps running, since the
// host log must go on even when the kernel refuses a rule (auditd does the
// same when auditctl fails at boot).
func (d *Daemon) applyKernel(cfg *config.Config, kf *auditrule.File) int {
	var problems int
	try := func(what string, err error) {
		if err != nil {
			problems++
			d.log.Error("configuring the kernel", "what", what, "error", err)
		}
	}
	set := func(name string, v *uint32, f func(uint32) error) {
		if v != nil {
			try(name, f(*v))
		}
	}
	set("backlog_limit", cfg.BacklogLimit, d.ctl.SetBacklogLimit)
	set("rate_limit", cfg.RateLimit, d.ctl.SetRateLimit)
	set("backlog_wait_time", cfg.BacklogWaitTime, d.ctl.SetBacklogWaitTime)
	set("failure", cfg.Failure, d.ctl.SetFailure)
	if kf.DeleteAll {
		_, err := d.ctl.DeleteRules()
		try("-D", err)
	}
	set("-b", kf.BacklogLimit, d.ctl.SetBacklogLimit)
	set("-r", kf.RateLimit, d.ctl.SetRateLimit)
	set("--backlog_wait_time", kf.BacklogWaitTime, d.ctl.SetBacklogWaitTime)
	set("-f", kf.Failure, d.ctl.SetFailure)
	loaded := 0
	for _, r := range kf.Rules {
		if err := d.ctl.AddRule(r.Wire); err != nil {
			try(fmt.Sprintf("%s:%d: %s", cfg.AuditRules, r.Line, r.Text), err)
			continue
		}
		loaded++
	}
	enable := uint32(1)
	if kf.Enabled != nil {
		enable = *kf.Enabled
	}
	try("enabled", d.ctl.SetEnabled(enable))
	d.log.Info("kernel configured", "rules", loaded, "of", len(kf.Rules), "enabled", enable, "problems", problems)
	return problems
}

// deleteRules removes every loaded rule (rules_on_exit: delete).
func (d *Daemon) deleteRules() {
	if n, err := d.ctl.DeleteRules(); err != nil {
		d.log.Error("deleting rules on exit", "error", err)
	} else {
		d.log.Info("deleted rules on exit", "rules", n)
	}
}
