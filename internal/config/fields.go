package config

import (
	"fmt"
	"net"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/plugin"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// fields maps each option name to the function that sets it.
var fields = map[string]func(c *Config, v string) error{
	"local_events": boolField(func(c *Config) *bool { return &c.LocalEvents }),
	"write_logs":   boolField(func(c *Config) *bool { return &c.WriteLogs }),
	"log_file":     pathField(func(c *Config) *string { return &c.Log.Path }),
	"log_format":   setLogFormat,
	"log_group":    setLogGroup,
	"priority_boost": func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 20 {
			return fmt.Errorf("%q is not a number from 0 to 20", v)
		}
		c.PriorityBoost = n
		return nil
	},
	"flush": setFlush,
	"freq": func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a positive number of records", v)
		}
		c.Log.Freq = n
		return nil
	},
	"num_logs": func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 999 {
			return fmt.Errorf("%q is not a number from 0 to 999", v)
		}
		c.Log.NumLogs = n
		return nil
	},
	"max_log_file": func(c *Config, v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not a size in megabytes", v)
		}
		c.Log.MaxLogFile = int64(n) << 20
		return nil
	},
	"max_log_file_action": actionField(func(c *Config) *hostlog.Action { return &c.Log.MaxLogFileAction },
		"ignore", "syslog", "suspend", "rotate", "keep_logs"),
	"name_format": func(c *Config, v string) error {
		v = strings.ToLower(v)
		switch v {
		case "none", "hostname", "fqd", "numeric", "user":
			c.NameFormat = v
			return nil
		}
		return fmt.Errorf("%q is not one of none, hostname, fqd, numeric, user", v)
	},
	"name":             func(c *Config, v string) error { c.Name = v; return nil },
	"space_left":       spaceField(func(c *Config) *hostlog.Space { return &c.Log.SpaceLeft }),
	"admin_space_left": spaceField(func(c *Config) *hostlog.Space { return &c.Log.AdminSpaceLeft }),
	"space_left_action": actionField(func(c *Config) *hostlog.Action { return &c.Log.SpaceLeftAction },
		"ignore", "syslog", "rotate", "exec", "suspend", "halt"),
	"admin_space_left_action": actionField(func(c *Config) *hostlog.Action { return &c.Log.AdminSpaceLeftAction },
		"ignore", "syslog", "rotate", "exec", "suspend", "halt"),
	"disk_full_action": actionField(func(c *Config) *hostlog.Action { return &c.Log.DiskFullAction },
		"ignore", "syslog", "rotate", "exec", "suspend", "halt"),
	"disk_error_action": actionField(func(c *Config) *hostlog.Action { return &c.Log.DiskErrorAction },
		"ignore", "syslog", "exec", "suspend", "halt"),
	"backlog_limit":     uintField(func(c *Config) **uint32 { return &c.BacklogLimit }, 1<<31-1),
	"rate_limit":        uintField(func(c *Config) **uint32 { return &c.RateLimit }, 1<<31-1),
	"backlog_wait_time": uintField(func(c *Config) **uint32 { return &c.BacklogWaitTime }, 600000),
	"failure": func(c *Config, v string) error {
		m := map[string]uint32{"0": 0, "1": 1, "2": 2, "silent": 0, "printk": 1, "panic": 2}
		n, ok := m[strings.ToLower(v)]
		if !ok {
			return fmt.Errorf("%q is not one of silent (0), printk (1), panic (2)", v)
		}
		c.Failure = &n
		return nil
	},
	"audit_rules": pathField(func(c *Config) *string { return &c.AuditRules }),
	"rules_on_exit": func(c *Config, v string) error {
		v = strings.ToLower(v)
		if v != "keep" && v != "delete" {
			return fmt.Errorf("%q is not keep or delete", v)
		}
		c.RulesOnExit = v
		return nil
	},
	"lost_check_interval": func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond {
			return fmt.Errorf("%q is not a duration of at least 100ms (like 5s)", v)
		}
		c.LostCheckInterval = d
		return nil
	},
	"containers_dir": pathField(func(c *Config) *string { return &c.ContainersDir }),
	"plugin_dir":     pathField(func(c *Config) *string { return &c.PluginDir }),
	"q_depth": func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 99999 {
			return fmt.Errorf("%q is not a number of records from 1 to 99999", v)
		}
		c.QDepth = n
		return nil
	},
	"max_restarts": func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10000 {
			return fmt.Errorf("%q is not a number from 0 to 10000", v)
		}
		c.MaxRestarts = n
		return nil
	},
	"overflow_action": func(c *Config, v string) error {
		m := map[string]plugin.Overflow{"ignore": plugin.OverflowIgnore, "syslog": plugin.OverflowSyslog,
			"suspend": plugin.OverflowSuspend, "halt": plugin.OverflowHalt}
		o, ok := m[strings.ToLower(v)]
		switch {
		case strings.EqualFold(v, "single"):
			return fmt.Errorf("SINGLE is not supported (auditd-ns does not change the runlevel): use SUSPEND, SYSLOG, IGNORE or HALT (which stops the daemon)")
		case !ok:
			return fmt.Errorf("%q is not one of ignore, syslog, suspend, halt", v)
		}
		c.OverflowAction = o
		return nil
	},
	"metrics_address": func(c *Config, v string) error {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			return fmt.Errorf("%q is not HOST:PORT", v)
		}
		c.MetricsAddress = v
		return nil
	},
	"max_rules":                limitField(func(c *Config) *int { return &c.RuleLimits.Container.Rules }),
	"max_rule_patterns":        limitField(func(c *Config) *int { return &c.RuleLimits.Container.Patterns }),
	"max_chain_rules":          limitField(func(c *Config) *int { return &c.RuleLimits.Chain.Rules }),
	"max_chain_patterns":       limitField(func(c *Config) *int { return &c.RuleLimits.Chain.Patterns }),
	"scoped_remote_host_netns": boolField(func(c *Config) *bool { return &c.Scoped.RemoteHostNetNS }),
	"scoped_quota_containers": func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1<<20 {
			return fmt.Errorf("%q is not a number from 1 to 1048576", v)
		}
		c.Scoped.Quota.Containers = n
		return nil
	},
	"scoped_quota_memory": sizeField(func(c *Config) *int64 { return &c.Scoped.Quota.Memory }),
	"scoped_quota_spool":  sizeField(func(c *Config) *int64 { return &c.Scoped.Quota.Spool }),
	"state_dir":           pathField(func(c *Config) *string { return &c.StateDir }),
	"control_socket":      pathField(func(c *Config) *string { return &c.ControlSocket }),
	"log_level": func(c *Config, v string) error {
		v = strings.ToLower(v)
		switch v {
		case "trace", "debug", "info", "warn", "error":
			c.LogLevel = v
			return nil
		}
		return fmt.Errorf("%q is not one of trace, debug, info, warn, error", v)
	},
}

func suggest(key string) string {
	var close []string
	for k := range fields {
		if strings.Contains(k, key) || strings.Contains(key, k) {
			close = append(close, k)
		}
	}
	sort.Strings(close)
	if len(close) > 0 {
		return "; did you mean " + strings.Join(close, " or ") + "?"
	}
	return ""
}

func boolField(f func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		switch strings.ToLower(v) {
		case "yes", "true":
			*f(c) = true
		case "no", "false":
			*f(c) = false
		default:
			return fmt.Errorf("%q is not yes or no", v)
		}
		return nil
	}
}

func pathField(f func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" {
			return fmt.Errorf("empty path")
		}
		*f(c) = v
		return nil
	}
}

func sizeField(f func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := registry.ParseSize(v)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a size like 256MiB, 1GiB or 1048576 (bytes)", v)
		}
		*f(c) = n
		return nil
	}
}

func uintField(f func(*Config) **uint32, max uint64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n > max {
			return fmt.Errorf("%q is not a number from 0 to %d", v, max)
		}
		u := uint32(n)
		*f(c) = &u
		return nil
	}
}

func setLogFormat(c *Config, v string) error {
	switch strings.ToLower(v) {
	case "raw":
		c.Log.Format = hostlog.Raw
	case "enriched":
		c.Log.Format = hostlog.Enriched
	default:
		return fmt.Errorf("%q is not RAW or ENRICHED", v)
	}
	return nil
}

func setLogGroup(c *Config, v string) error {
	if _, err := user.LookupGroup(v); err != nil {
		if _, err := user.LookupGroupId(v); err != nil {
			return fmt.Errorf("no group %q", v)
		}
	}
	c.LogGroup = v
	return nil
}

func setFlush(c *Config, v string) error {
	m := map[string]hostlog.FlushMode{
		"none": hostlog.FlushNone, "incremental": hostlog.FlushIncremental,
		"incremental_async": hostlog.FlushIncrementalAsync, "data": hostlog.FlushData, "sync": hostlog.FlushSync,
	}
	f, ok := m[strings.ToLower(v)]
	if !ok {
		return fmt.Errorf("%q is not one of none, incremental, incremental_async, data, sync", v)
	}
	c.Log.Flush = f
	return nil
}

func spaceField(f func(*Config) *hostlog.Space) func(*Config, string) error {
	return func(c *Config, v string) error {
		if p, ok := strings.CutSuffix(v, "%"); ok {
			n, err := strconv.ParseFloat(p, 64)
			if err != nil || n <= 0 || n >= 100 {
				return fmt.Errorf("%q is not a percentage between 0 and 100", v)
			}
			*f(c) = hostlog.Space{Percent: n}
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not a size in megabytes or a percentage like 25%%", v)
		}
		*f(c) = hostlog.Space{Bytes: n << 20}
		return nil
	}
}

func actionField(f func(*Config) *hostlog.Action, allowed ...string) func(*Config, string) error {
	kinds := map[string]hostlog.ActionKind{
		"ignore": hostlog.ActionIgnore, "syslog": hostlog.ActionSyslog, "rotate": hostlog.ActionRotate,
		"keep_logs": hostlog.ActionKeepLogs, "suspend": hostlog.ActionSuspend, "exec": hostlog.ActionExec,
		"halt": hostlog.ActionHalt,
	}
	return func(c *Config, v string) error {
		word, arg, _ := strings.Cut(strings.TrimSpace(v), " ")
		word = strings.ToLower(word)
		ok := false
		for _, a := range allowed {
			ok = ok || a == word
		}
		switch {
		case word == "email" || word == "single":
			return fmt.Errorf("%s is not supported by auditd-ns (use exec with a script, or halt)", word)
		case !ok:
			return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
		case word == "exec" && !strings.HasPrefix(strings.TrimSpace(arg), "/"):
			return fmt.Errorf("exec needs an absolute path to a script, like \"exec /usr/local/sbin/audit-full\"")
		case word != "exec" && arg != "":
			return fmt.Errorf("%s takes no argument", word)
		}
		*f(c) = hostlog.Action{Kind: kinds[word], Exec: strings.TrimSpace(arg)}
		return nil
	}
}

// limitField sets a rules limit: a count from 0 (no limit) to 1048576.
func limitField(f func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<20 {
			return fmt.Errorf("%q is not a number from 0 (no limit) to 1048576", v)
		}
		*f(c) = n
		return nil
	}
}
