package jetstream

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// Headers set on every message besides Nats-Msg-Id.
const (
	// LostHeader, when present, counts the copies the queue dropped just
	// before this message's record. A message with an empty body and this
	// header is a notice alone.
	LostHeader = "Auditd-Ns-Lost"
	// UnroutedHeader, when present, says that records of the host were
	// left unrouted (the router fell behind) just before this message's
	// record: "N first=SEC.MSEC:SERIAL last=SEC.MSEC:SERIAL", N the number
	// of records, first and last the headers of the first and last of
	// them, each left out when unknown (queue.Unrouted).
	UnroutedHeader = "Auditd-Ns-Unrouted"
)

// Publisher defaults.
const (
	DefaultWindow = 512
	idleCommit    = 200 * time.Millisecond
)

// Publisher drains a queue to one JetStream subject. Set the fields, then
// call Run once; Status may be called at any time from any goroutine.
type Publisher struct {
	Conn
	// Subject is the literal subject published to, audit.host.HOST or
	// audit.tenant.TENANT.HOST (HostSubject, TenantSubject).
	Subject string
	// Stream, if set, is the stream that must take the messages: a
	// message the server would store elsewhere is refused (Nats-Expected-
	// Stream) and retried, and the error shows in Status.
	Stream string
	// Host names this host in each Nats-Msg-Id. "" means Subject's last
	// token.
	Host string
	// Queue is drained by Run. An item is committed only after the stream
	// acknowledged it.
	Queue queue.Reader
	// Logger receives connection-level events. Nil means no logging.
	Logger hclog.Logger
	// Window is the most messages awaiting their ack (after a resend,
	// half as many, growing back with each ack). Zero means
	// DefaultWindow.
	Window int
	// AckTimeout is how long a message may wait for its ack before the
	// unacknowledged ones are sent again. Zero means DefaultAckTimeout.
	AckTimeout time.Duration

	mu sync.Mutex // guards st
	st Status

	// idle is how long the queue may stay empty before an acknowledged
	// tail is committed; zero means idleCommit.
	idle time.Duration

	// Run's own state: the position of the last committed item, of the
	// last one read, and an acknowledged tail not yet committed because
	// its event may go on; the items read and not yet done, oldest first,
	// how many of them await their ack, and a send that failed.
	committed, cur position
	tailSeq        uint64
	tailPos        position
	msgID          []byte
	out            []pending
	unacked        int
	sendErr        error
	// win is how many messages may await their ack now: Window, halved
	// at each resend, grown back by one with each ack.
	win, maxWin int
}

// Status is a snapshot of a Publisher, as remote.SenderStatus is of a
// remote sender.
type Status struct {
	URL, Subject, Stream string
	Connected            bool
	// InFlight is the number of messages sent and not yet acknowledged.
	InFlight int
	// Published counts messages handed to the connection, sent again ones
	// included.
	Published uint64
	// Acked counts messages the stream acknowledged as new.
	Acked uint64
	// Duplicates counts messages the stream acknowledged as duplicates of
	// one it held: records sent again after a lost ack.
	Duplicates uint64
	// Retried counts messages sent again because an ack did not come.
	Retried uint64
	// Skipped counts EOE and empty records, which are not published.
	Skipped uint64
	// LostNotices counts messages that told of dropped copies.
	LostNotices uint64
	// Connects counts successful connections.
	Connects      uint64
	LastError     string
	LastErrorTime time.Time
}

// Status returns a snapshot of the publisher's state and counters.
func (p *Publisher) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.URL, st.Subject, st.Stream = p.URL, p.Subject, p.Stream
	return st
}

func (p *Publisher) setErr(err error) {
	p.mu.Lock()
	p.st.LastError = err.Error()
	p.st.LastErrorTime = time.Now()
	p.mu.Unlock()
}

func (p *Publisher) hooks(log hclog.Logger) connHooks {
	return connHooks{
		up: func() {
			p.mu.Lock()
			p.st.Connected = true
			p.st.Connects++
			p.mu.Unlock()
			log.Debug("connected to jetstream", "url", p.URL, "subject", p.Subject)
		},
		down: func(err error) {
			p.mu.Lock()
			p.st.Connected = false
			p.mu.Unlock()
			if err != nil {
				p.setErr(err)
				log.Warn("jetstream connection lost", "url", p.URL, "error", err)
			}
		},
		err: func(err error) {
			p.setErr(err)
			log.Warn("jetstream connection error", "url", p.URL, "error", err)
		},
	}
}

// Check validates the publisher's settings without connecting.
func (p *Publisher) Check() error {
	switch {
	case p.URL == "":
		return errors.New("jetstream: no url")
	case p.Queue == nil:
		return errors.New("jetstream: no queue")
	case p.Window < 0:
		return fmt.Errorf("jetstream: window %d is negative", p.Window)
	}
	if err := CheckSubject(p.Subject); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if p.Host != "" {
		if _, err := Token("host", p.Host); err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
	}
	return nil
}

// Run publishes until ctx ends or the queue is closed, then returns nil.
// It returns an error only for invalid settings or an unreadable
// credentials file; connection and stream errors are retried with
// backoff and shown by Status.
func (p *Publisher) Run(ctx context.Context) error {
	if err := p.Check(); err != nil {
		return err
	}
	log := orNull(p.Logger)
	window := p.Window
	if window == 0 {
		window = DefaultWindow
	}
	ackTimeout := p.AckTimeout
	if ackTimeout <= 0 {
		ackTimeout = DefaultAckTimeout
	}
	host := p.Host
	if host == "" {
		host = hostOf(p.Subject)
	}
	c := p.Conn.named("auditd-ns " + p.Subject)
	nc, err := c.connect(p.hooks(log))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*window), jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	minB, maxB := c.backoff()
	backoff := minB
	// now is ctx already ended: a Read with it takes what is there
	// without waiting.
	now, end := context.WithCancel(ctx)
	end()
	p.win, p.maxWin = window, window
	for {
		err := p.step(ctx, now, js, host)
		switch {
		case ctx.Err() != nil || errors.Is(err, queue.ErrClosed):
			return nil
		case err == nil:
			backoff = minB
			continue
		case errors.Is(err, errRead):
			p.setErr(err)
			log.Error("reading the queue", "subject", p.Subject, "error", err)
			sleep(ctx, backoff)
			continue
		}
		p.setErr(err)
		log.Warn("jetstream publish failed; sending the unacknowledged records again", "subject", p.Subject, "error", err, "retry_in", backoff)
		p.resend()
		sleep(ctx, jitter(backoff))
		backoff = min(2*backoff, maxB)
	}
}

// errRead wraps an error of the queue's Read.
var errRead = errors.New("reading the queue")

// pending is one item read and not yet done.
type pending struct {
	seq  uint64
	pos  position
	fut  jetstream.PubAckFuture // nil for an item not published
	skip bool                   // not to be published: done as it is
}

// step is one turn of the pipeline: it reads what the window has room
// for and publishes it, then waits for the oldest message's ack and
// takes every ack that came in order, committing as it goes. An error
// is one to resend after (an ack that failed or did not come, a send
// that failed), errRead, or the queue's ErrClosed.
func (p *Publisher) step(ctx, now context.Context, js jetstream.JetStream, host string) error {
	if room := p.win - p.unacked; room > 0 && p.sendErr == nil {
		readCtx, cancel := now, context.CancelFunc(func() {})
		switch {
		case len(p.out) > 0:
			// Acks are awaited: take only what is there.
		case p.tailSeq != 0:
			readCtx, cancel = context.WithTimeout(ctx, cmp.Or(p.idle, idleCommit))
		default:
			readCtx = ctx
		}
		items, err := p.Queue.Read(readCtx, room)
		cancel()
		switch {
		case ctx.Err() != nil || errors.Is(err, queue.ErrClosed):
			return queue.ErrClosed
		case errors.Is(err, context.DeadlineExceeded) && len(p.out) == 0:
			// Idle: the tail's event is over.
			p.commit(p.tailSeq, p.tailPos)
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		case err != nil:
			return fmt.Errorf("%w: %w", errRead, err)
		default:
			p.send(js, host, items)
		}
	}
	return p.advance(ctx)
}

// send publishes items, asynchronously, and queues them for their acks.
// A send that fails stops the sending: what was sent is awaited, then the
// rest is sent again (advance returns the error when it reaches it).
func (p *Publisher) send(js jetstream.JetStream, host string, items []queue.Item) {
	for _, it := range items {
		pos, _ := p.cur.next(it.Data)
		p.cur = pos
		if pos.index == 0 && len(p.out) == 0 && p.tailSeq != 0 {
			p.commit(p.tailSeq, p.tailPos) // the tail's event is over
		}
		pd := pending{seq: it.Seq, pos: pos}
		data := bytes.TrimSuffix(it.Data, []byte("\n"))
		if len(data) == 0 || record.IsEOE(data) {
			p.count(func(s *Status) { s.Skipped++ })
			if it.Lost == 0 && it.Unrouted == nil {
				pd.skip = true
				p.out = append(p.out, pd)
				continue
			}
			data = nil // a notice alone
		}
		if p.sendErr == nil {
			// The client keeps the message until its ack, to send it
			// again itself (no responders): it gets a copy, as Read
			// lends the item's data only until the next Read.
			msg := &nats.Msg{Subject: p.Subject, Data: bytes.Clone(data), Header: nats.Header{}}
			p.msgID = appendMsgID(p.msgID[:0], host, pos, it.Seq)
			msg.Header.Set(jetstream.MsgIDHeader, string(p.msgID))
			if it.Lost > 0 {
				msg.Header.Set(LostHeader, strconv.FormatUint(it.Lost, 10))
			}
			if it.Unrouted != nil {
				msg.Header.Set(UnroutedHeader, formatUnrouted(*it.Unrouted))
			}
			if p.Stream != "" {
				msg.Header.Set(jetstream.ExpectedStreamHeader, p.Stream)
			}
			pd.fut, p.sendErr = js.PublishMsgAsync(msg)
			if p.sendErr == nil {
				p.unacked++
				p.count(func(s *Status) { s.Published++; s.InFlight = p.unacked })
			}
		}
		p.out = append(p.out, pd)
	}
}

// advance waits for the ack of the oldest message awaited, then takes
// every other ack that came in order, and commits what is done: every
// item up to the last one whose event is known to be over (the next item
// starts another event), so that an event is never committed in part and
// its records keep their index after a restart. The done items of an
// event that may go on are the tail.
func (p *Publisher) advance(ctx context.Context) error {
	wait := true
	for len(p.out) > 0 {
		pd := p.out[0]
		if !pd.skip {
			if pd.fut == nil {
				return p.sendErr
			}
			var ack *jetstream.PubAck
			if wait {
				select {
				case ack = <-pd.fut.Ok():
				case err := <-pd.fut.Err():
					return err
				case <-ctx.Done():
					return ctx.Err()
				}
			} else {
				select {
				case ack = <-pd.fut.Ok():
				case err := <-pd.fut.Err():
					return err
				default:
					return nil
				}
			}
			wait = false
			p.unacked--
			p.win = min(p.win+1, p.maxWin)
			p.count(func(s *Status) {
				s.InFlight = p.unacked
				if ack.Duplicate {
					s.Duplicates++
				} else {
					s.Acked++
				}
				for _, h := range []string{LostHeader, UnroutedHeader} {
					if pd.fut.Msg().Header.Get(h) != "" {
						s.LostNotices++
					}
				}
			})
		}
		p.out = p.out[1:]
		p.tailSeq, p.tailPos = pd.seq, pd.pos
		if len(p.out) > 0 && p.out[0].pos.index == 0 {
			p.commit(pd.seq, pd.pos)
		}
	}
	if len(p.out) == 0 {
		p.out = p.out[:0:0] // let the array go once drained
	}
	return nil
}

// resend forgets what was sent and not committed, so that the next read
// starts from the oldest uncommitted item and sends it again, under the
// same ids: what the stream had is then a duplicate it drops.
func (p *Publisher) resend() {
	p.count(func(s *Status) { s.Retried += uint64(p.unacked); s.InFlight = 0 })
	// A server that did not answer in time gets fewer at once; the
	// window grows back by one with each ack.
	p.win = max(p.win/2, 1)
	p.Queue.Rewind()
	p.out, p.unacked, p.sendErr = nil, 0, nil
	p.cur, p.tailSeq = p.committed, 0
}

// commit removes every item up to seq from the queue.
func (p *Publisher) commit(seq uint64, pos position) {
	if seq == 0 {
		return
	}
	p.Queue.Commit(seq)
	p.committed = pos
	if seq >= p.tailSeq {
		p.tailSeq = 0
	}
}

func (p *Publisher) count(f func(*Status)) {
	p.mu.Lock()
	f(&p.st)
	p.mu.Unlock()
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
