package source

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"

	libaudit "github.com/elastic/go-libaudit/v2"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// Control makes the kernel's audit control calls on a socket of its own.
// Needs CAP_AUDIT_CONTROL for everything but Status. It is safe for
// concurrent use: calls take turns on the socket, each waiting for its
// reply.
type Control struct {
	mu sync.Mutex // guards c; held for a whole call and its reply
	c  *libaudit.AuditClient
}

// FeatureContID is the audit feature bit of the container-ID patches.
const FeatureContID = 0x80

// ErrNotSupported is the error, for errors.Is, of what needs the
// container-ID patches on a kernel without them.
var ErrNotSupported = errors.New("this kernel lacks the container-ID patches (audit feature bit 0x80)")

// ContainerIDs reports whether the kernel has the container-ID patches; it
// returns an error wrapping ErrNotSupported when it has not.
func (c *Control) ContainerIDs() error {
	st, err := c.Status()
	if err != nil {
		return err
	}
	if st.FeatureBitmap&FeatureContID == 0 {
		return fmt.Errorf("audit features %#x: %w", st.FeatureBitmap, ErrNotSupported)
	}
	return nil
}

// OpenControl opens the control socket.
func OpenControl() (*Control, error) {
	c, err := libaudit.NewAuditClient(nil)
	if err != nil {
		return nil, fmt.Errorf("opening audit control socket: %w", err)
	}
	return &Control{c: c}, nil
}

// resync replaces the socket after a failed call. go-libaudit gives up on a
// reply that is slow to come (a loaded machine); the late reply would then be
// read as the answer to the next call, and every later call would fail with
// "unexpected sequence number". A new socket has no stale replies.
// retry runs f, and once more on a fresh socket if the reply was lost in
// a stale-reply mix-up (see resync).
func (c *Control) retry(f func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f()
	if err != nil && strings.Contains(err.Error(), "sequence number") {
		c.resync()
		err = f()
	}
	return err
}

func (c *Control) resync() { // c.mu is held
	if n, err := libaudit.NewAuditClient(nil); err == nil {
		c.c.Close()
		c.c = n
	}
}

// Status is the kernel's audit status.
type Status = libaudit.AuditStatus

// Status reads the kernel's audit status (enabled, pid, lost, backlog...).
func (c *Control) Status() (*Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.c.GetStatus()
	if err != nil {
		c.resync()
		s, err = c.c.GetStatus()
	}
	if err != nil {
		return nil, fmt.Errorf("reading audit status: %w", err)
	}
	return s, nil
}

// Failure modes for SetFailure, with the kernel's numbers (go-libaudit's
// FailureMode constants are all zero).
const (
	FailureSilent = 0
	FailurePrintk = 1
	FailurePanic  = 2
)

// SetEnabled sets the enabled flag: 0 off, 1 on, 2 on and locked.
func (c *Control) SetEnabled(v uint32) error {
	var err error
	if v == 2 {
		err = c.retry(func() error { return c.c.SetImmutable(libaudit.WaitForReply) })
	} else {
		err = c.retry(func() error { return c.c.SetEnabled(v == 1, libaudit.WaitForReply) })
	}
	if err != nil {
		return fmt.Errorf("setting audit enabled=%d: %w", v, err)
	}
	return nil
}

// SetBacklogLimit sets the kernel's backlog_limit.
func (c *Control) SetBacklogLimit(v uint32) error {
	if err := c.retry(func() error { return c.c.SetBacklogLimit(v, libaudit.WaitForReply) }); err != nil {
		return fmt.Errorf("setting backlog_limit=%d: %w", v, err)
	}
	return nil
}

// SetRateLimit sets the kernel's rate_limit (records per second, 0 = none).
func (c *Control) SetRateLimit(v uint32) error {
	if err := c.retry(func() error { return c.c.SetRateLimit(v, libaudit.WaitForReply) }); err != nil {
		return fmt.Errorf("setting rate_limit=%d: %w", v, err)
	}
	return nil
}

// SetBacklogWaitTime sets backlog_wait_time (in jiffies, as auditctl).
func (c *Control) SetBacklogWaitTime(v uint32) error {
	if err := c.retry(func() error { return c.c.SetBacklogWaitTime(int32(v), libaudit.WaitForReply) }); err != nil {
		return fmt.Errorf("setting backlog_wait_time=%d: %w", v, err)
	}
	return nil
}

// SetFailure sets the failure mode (FailureSilent, FailurePrintk, FailurePanic).
func (c *Control) SetFailure(v uint32) error {
	if err := c.retry(func() error { return c.c.SetFailure(libaudit.FailureMode(v), libaudit.WaitForReply) }); err != nil {
		return fmt.Errorf("setting failure=%d: %w", v, err)
	}
	return nil
}

// AddRule loads one rule in the kernel's wire format.
func (c *Control) AddRule(wire []byte) error {
	if err := c.retry(func() error { return c.c.AddRule(wire) }); err != nil {
		return fmt.Errorf("adding rule: %w", err)
	}
	return nil
}

// DeleteRule removes one rule given in the kernel's wire format.
func (c *Control) DeleteRule(wire []byte) error {
	if err := c.retry(func() error { return c.c.DeleteRule(wire) }); err != nil {
		return fmt.Errorf("deleting rule: %w", err)
	}
	return nil
}

// DeleteRules removes every rule and returns how many there were.
func (c *Control) DeleteRules() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.c.DeleteRules()
	if err != nil {
		return n, fmt.Errorf("deleting rules: %w", err)
	}
	return n, nil
}

// Rules returns every loaded rule in the kernel's wire format.
func (c *Control) Rules() ([][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.c.GetRules()
	if err != nil {
		return nil, fmt.Errorf("listing rules: %w", err)
	}
	return r, nil
}

// Close closes the control socket. It never changes the audit pid.
func (c *Control) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c.Close()
}

// UserMessage asks the kernel to log text as a trusted-application record
// (AUDIT_TRUSTED_APP) of this process. Needs CAP_AUDIT_WRITE. The kernel's
// answer is not awaited: a refusal shows up as a stale reply, which the next
// call's resync absorbs.
func (c *Control) UserMessage(text string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.c.Netlink.Send(syscall.NetlinkMessage{
		Header: syscall.NlMsghdr{Type: record.TypeTrustedApp, Flags: syscall.NLM_F_REQUEST},
		Data:   append([]byte(text), 0),
	})
	if err != nil {
		return fmt.Errorf("sending a user message: %w", err)
	}
	return nil
}
