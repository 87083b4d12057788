package deliver

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// Remote is a Target that sends copies to an auditd (or an auditd-ns in
// listener mode) over the remote-logging protocol, optionally dialing from
// inside the container's network namespace.
type Remote struct {
	s       *remote.Sender
	closeNS func() error
}

var _ Target = (*Remote)(nil)

// NewRemote returns a remote target for addr (host:port). With netns (a
// /run/netns/NAME or /proc/PID/ns/net path), connections are opened inside
// that network namespace, which is opened now and held until Close.
func NewRemote(addr, netns string, log hclog.Logger) (*Remote, error) {
	t := &Remote{s: &remote.Sender{Addr: addr, Logger: log}, closeNS: func() error { return nil }}
	if netns != "" {
		dial, closer, err := netnsDialer(netns)
		if err != nil {
			return nil, err
		}
		t.s.Dial, t.closeNS = dial, closer
	}
	return t, nil
}

// Run sends r's copies until ctx ends; an item is committed once the peer
// acknowledged it.
func (t *Remote) Run(ctx context.Context, r queue.Reader) error {
	t.s.Queue = r
	if err := t.s.Run(ctx); err != nil {
		return fmt.Errorf("delivery to %s: %w", t.s.Addr, err)
	}
	return nil
}

// Status reports the connection and the sender's counters.
func (t *Remote) Status() Status {
	s := t.s.Status()
	return Status{Connected: s.Connected, Acked: s.Acked, InFlight: s.InFlight, Retried: s.Retried,
		WaitingOnReceiver: s.WaitingOnReceiver, ReceiverWait: s.ReceiverWait,
		LastError: s.LastError, LastErrorTime: s.LastErrorTime}
}

// Close releases the network namespace.
func (t *Remote) Close() error { return t.closeNS() }
