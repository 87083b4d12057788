package deliver

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/pkg/jetstream"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// JetStream is a Target that publishes copies to NATS JetStream
// (docs/jetstream.md): each one is committed once the stream acknowledged
// it, under a message id that makes a resent copy a duplicate the stream
// drops.
type JetStream struct {
	p *jetstream.Publisher
}

var _ Target = (*JetStream)(nil)

// NewJetStream returns the jetstream target of container name. An empty
// subject is audit.tenant.NAME.HOST, HOST this machine's name; acks come
// back on _INBOX_HOST, as the host's permissions in docs/jetstream.md
// allow.
func NewJetStream(name string, t *registry.JetStreamTarget, log hclog.Logger) (*JetStream, error) {
	subject := t.Subject
	if subject == "" {
		host, err := os.Hostname()
		if err == nil {
			subject, err = jetstream.TenantSubject(name, host)
		}
		if err != nil {
			return nil, fmt.Errorf("the jetstream target of %q has no subject, and none can be made: %w", name, err)
		}
	}
	p := &jetstream.Publisher{
		Conn: jetstream.Conn{URL: t.URL, Credentials: t.Credentials,
			InboxPrefix: "_INBOX_" + subject[strings.LastIndexByte(subject, '.')+1:]},
		Subject: subject, Stream: t.Stream, Logger: log,
	}
	return &JetStream{p: p}, nil
}

// Run publishes r's copies until ctx ends.
func (t *JetStream) Run(ctx context.Context, r queue.Reader) error {
	t.p.Queue = r
	if err := t.p.Run(ctx); err != nil {
		return fmt.Errorf("delivery to %s: %w", t.p.Subject, err)
	}
	return nil
}

// Status reports the connection and the publisher's counters. Acked
// counts the copies the stream took, duplicates included: each is
// committed.
func (t *JetStream) Status() Status {
	s := t.p.Status()
	return Status{Connected: s.Connected, Acked: s.Acked + s.Duplicates, InFlight: s.InFlight, Retried: s.Retried,
		WaitingOnReceiver: s.InFlight > 0, LastError: s.LastError, LastErrorTime: s.LastErrorTime}
}

// Close has nothing to release: Run closes the connection.
func (t *JetStream) Close() error { return nil }
