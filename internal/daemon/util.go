package daemon

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/auditd-ns/auditd-ns/internal/config"
)

// nodeName is the node= prefix that name_format asks for ("" for none).
func nodeName(cfg *config.Config) string {
	host, _ := os.Hostname()
	switch cfg.NameFormat {
	case "hostname":
		return host
	case "fqd":
		if cname, err := net.LookupCNAME(host); err == nil {
			return strings.TrimSuffix(cname, ".")
		}
		return host
	case "numeric":
		if addrs, err := net.LookupHost(host); err == nil && len(addrs) > 0 {
			return addrs[0]
		}
		return host
	case "user":
		return cfg.Name
	}
	return ""
}

func chgrp(path, group string) error {
	g, err := user.LookupGroup(group)
	if err != nil {
		if g, err = user.LookupGroupId(group); err != nil {
			return fmt.Errorf("log_group %q: %w", group, err)
		}
	}
	gid, _ := strconv.Atoi(g.Gid)
	if err := os.Lchown(path, -1, gid); err != nil {
		return fmt.Errorf("setting the log's group: %w", err)
	}
	return nil
}

// boost raises the daemon's scheduling priority by n nice levels, as
// auditd's priority_boost does. On Linux a nice value belongs to a thread,
// not the process, and a Go program runs several threads by now: each is
// raised, again until no new one has appeared, and threads started later
// inherit the value from the thread that starts them.
func boost(n int, log hclog.Logger) {
	if n == 0 {
		return
	}
	if err := boostThreads(n); err != nil {
		log.Warn("raising priority (priority_boost)", "error", err)
	}
}

func boostThreads(n int) error {
	done := map[int]bool{}
	for {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		more := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			more, done[tid] = true, true
			// The raw getpriority(2) answer is 20 - nice.
			raw, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
			if err != nil {
				continue // the thread has exited
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, max(20-raw-n, -20)); err != nil && err != unix.ESRCH {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
		}
		if !more {
			return nil
		}
	}
}
