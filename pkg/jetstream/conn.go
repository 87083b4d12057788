package jetstream

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Defaults shared by Publisher and Consumer.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultAckTimeout = 10 * time.Second
	dialTimeout       = 10 * time.Second
)

// Conn is what a Publisher or Consumer needs to reach the servers.
type Conn struct {
	// URL is one server or a comma-separated list (nats://HOST:PORT or
	// tls://HOST:PORT); the client learns the rest of the cluster.
	URL string
	// Credentials is the path of a file that authenticates the client: a
	// NATS credentials file (a user JWT and its nkey seed, decentralised
	// auth) or a file holding one user nkey seed (SU...), as the server's
	// accounts list the user's public nkey. "" connects without.
	Credentials string
	// InboxPrefix replaces "_INBOX" in the subjects the client receives
	// replies on, so that server permissions can give each user its own
	// inboxes (docs/jetstream.md). "" keeps _INBOX.
	InboxPrefix string
	// Name is the connection's name, shown by the server's monitoring.
	Name string
	// MinBackoff and MaxBackoff bound the exponential wait between failed
	// connections. Zero means DefaultMinBackoff, DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// connHooks receive connection events, for a status.
type connHooks struct {
	up   func()
	down func(error)
	err  func(error)
}

// credOption reads the credentials file and returns the option that
// presents it. The file is read once here, so a bad file is an error at
// start, naming it.
func credOption(path string) (nats.Option, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if bytes.Contains(b, []byte("BEGIN NATS USER JWT")) {
		return nats.UserCredentials(path), nil
	}
	seed := bytes.TrimSpace(b)
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: neither a NATS credentials file nor a user nkey seed: %v", path, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %v", path, err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("credentials %s: the seed is not a user nkey (its public key is %.1s...)", path, pub)
	}
	kp.Wipe()
	return nats.NkeyOptionFromSeed(path)
}

// connect opens the connection. It returns at once: with
// RetryOnFailedConnect the client keeps trying, with backoff, in the
// background, and so after any later loss of the connection.
func (c Conn) connect(h connHooks) (*nats.Conn, error) {
	if c.URL == "" {
		return nil, errors.New("no server url")
	}
	minB, maxB := c.backoff()
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.Timeout(dialTimeout),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := minB
			for i := 1; i < attempts && d < maxB; i++ {
				d *= 2
			}
			return jitter(min(d, maxB))
		}),
		nats.ConnectHandler(func(*nats.Conn) { h.up() }),
		nats.ReconnectHandler(func(*nats.Conn) { h.up() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { h.down(err) }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { h.err(err) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { h.err(err) }),
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	if c.Credentials != "" {
		o, err := credOption(c.Credentials)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", c.URL, err)
	}
	return nc, nil
}

// backoff returns MinBackoff and MaxBackoff, or their defaults.
func (c Conn) backoff() (minB, maxB time.Duration) {
	minB, maxB = c.MinBackoff, c.MaxBackoff
	if minB <= 0 {
		minB = DefaultMinBackoff
	}
	if maxB <= 0 {
		maxB = DefaultMaxBackoff
	}
	return minB, max(maxB, minB)
}

// named returns c with name as its Name when it has none.
func (c Conn) named(name string) Conn {
	if c.Name == "" {
		c.Name = name
	}
	return c
}

// orNull returns l, or a logger that drops everything when l is nil.
func orNull(l hclog.Logger) hclog.Logger {
	if l == nil {
		return hclog.NewNullLogger()
	}
	return l
}

// jitter spreads d over [0.8d, 1.2d) so that many hosts do not reconnect
// in step.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
}
