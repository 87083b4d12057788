package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Client talks to a Server over one connection. Its methods may be called
// from several goroutines; requests go one at a time.
type Client struct {
	mu   sync.Mutex // guards conn and br: one request at a time
	conn net.Conn
	br   *bufio.Reader
	path string
	// broken is set when an exchange failed half-way: the connection may
	// hold a late answer, so it is closed and no longer used.
	broken error
}

// Dial connects to the control socket at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connecting to the auditd-ns control socket: %w", err)
	}
	return &Client{conn: c, br: bufio.NewReaderSize(c, 64<<10), path: path}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Register registers the container file src; file names it in errors.
// With replace, a container of the same name is replaced.
func (c *Client) Register(ctx context.Context, file string, src []byte, replace bool) (ContainerInfo, error) {
	r, err := c.call(ctx, &Request{Op: OpRegister, File: file, Source: string(src), Replace: replace})
	if err != nil {
		return ContainerInfo{}, err
	}
	if r.Container == nil {
		return ContainerInfo{}, c.missing(OpRegister, "container")
	}
	return *r.Container, nil
}

// Unregister unregisters the container called name: mode is ModeDrain
// (waiting up to timeout, zero meaning DefaultDrainTimeout) or ModeSpool.
func (c *Client) Unregister(ctx context.Context, name, mode string, timeout time.Duration) (UnregisterResult, error) {
	req := &Request{Op: OpUnregister, Name: name, Mode: mode, TimeoutMS: timeout.Milliseconds()}
	r, err := c.call(ctx, req)
	if err != nil {
		return UnregisterResult{}, err
	}
	if r.Unregistered == nil {
		return UnregisterResult{}, c.missing(OpUnregister, "unregistered")
	}
	return *r.Unregistered, nil
}

// UnregisterOwned is Unregister of a container registered with owner
// (the container file's owner: key) only; any other is ErrConflict.
func (c *Client) UnregisterOwned(ctx context.Context, name, owner, mode string, timeout time.Duration) (UnregisterResult, error) {
	if owner == "" {
		return UnregisterResult{}, errors.New("UnregisterOwned: no owner")
	}
	req := &Request{Op: OpUnregister, Name: name, Mode: mode, TimeoutMS: timeout.Milliseconds(), Owner: owner}
	r, err := c.call(ctx, req)
	if err != nil {
		return UnregisterResult{}, err
	}
	if r.Unregistered == nil {
		return UnregisterResult{}, c.missing(OpUnregister, "unregistered")
	}
	return *r.Unregistered, nil
}

// PushRules replaces the rules of the container called name with the
// rules file src; file names it in errors.
func (c *Client) PushRules(ctx context.Context, name, file string, src []byte) (ContainerInfo, error) {
	r, err := c.call(ctx, &Request{Op: OpRulesPush, Name: name, File: file, Source: string(src)})
	if err != nil {
		return ContainerInfo{}, err
	}
	if r.Container == nil {
		return ContainerInfo{}, c.missing(OpRulesPush, "container")
	}
	return *r.Container, nil
}

// Containers lists the containers this socket may see.
func (c *Client) Containers(ctx context.Context) ([]ContainerInfo, error) {
	r, err := c.call(ctx, &Request{Op: OpContainers})
	if err != nil {
		return nil, err
	}
	return r.Containers, nil
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	r, err := c.call(ctx, &Request{Op: OpStatus})
	if err != nil {
		return Status{}, err
	}
	if r.Status == nil {
		return Status{}, c.missing(OpStatus, "status")
	}
	return *r.Status, nil
}

// call sends req and reads its answer. An error answer is returned as
// *Error; ctx bounds the whole exchange.
func (c *Client) call(ctx context.Context, req *Request) (*Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil, fmt.Errorf("%s: the connection is unusable after an earlier error: %w", req.Op, c.broken)
	}
	req.V = Version
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding the request: %w", req.Op, err)
	}
	// The context alone bounds the exchange: when it ends, the deadline
	// is moved to now, and ctx.Err() says why.
	c.conn.SetDeadline(time.Time{})
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", req.Op, err)
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return nil, c.ioErr(ctx, req.Op, "sending the request", err)
	}
	line, err := c.br.ReadBytes('\n')
	if err != nil {
		return nil, c.ioErr(ctx, req.Op, "reading the answer", err)
	}
	var r Response
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("%s: the answer is not JSON: %w", req.Op, err)
	}
	if r.V != Version {
		return nil, fmt.Errorf("%s: the server answered in version %d, this client speaks %d", req.Op, r.V, Version)
	}
	if !r.OK {
		if r.Error == nil {
			return nil, &Error{Op: req.Op, Code: CodeInternal, Message: "the server refused without saying why"}
		}
		return nil, r.Error
	}
	return &r, nil
}

func (c *Client) ioErr(ctx context.Context, op, doing string, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	c.broken = err
	c.conn.Close()
	return fmt.Errorf("%s: %s on %s: %w", op, doing, c.path, err)
}

func (c *Client) missing(op, field string) error {
	return fmt.Errorf("%s: the answer has no %q", op, field)
}
