package control

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults of the Server's limits.
const (
	DefaultReadTimeout  = 30 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultMaxConns     = 32
)

// Server answers control requests on a listener, on behalf of Backend.
type Server struct {
	// Backend does the work. Required.
	Backend Backend
	// Logger receives the server's messages; nil means none.
	Logger hclog.Logger
	// Scope is "" for the host admin's socket, which may do everything,
	// or the name of the container whose nested orchestrator this socket
	// serves; see CheckScope, CheckScopeName and CheckPeer.
	Scope string
	// Proc is the procfs mount CheckPeer reads. Zero means "/proc".
	Proc string
	// Policy returns the host admin's ScopePolicy at the time of a
	// request, for a scoped socket. Nil (or a nil result) means the zero
	// policy: no remote targets, no ids, the default quotas.
	Policy func() *ScopePolicy
	// MaxRequest is the longest request line in bytes. Zero means
	// DefaultMaxRequest.
	MaxRequest int
	// ReadTimeout is how long a connection may take to send a whole
	// request, idle time included. Zero means DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an answer. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MaxConns is the most connections served at once; more are answered
	// "busy" and closed. Zero means DefaultMaxConns.
	MaxConns int
}

// Run serves ln until ctx ends, then closes ln and every connection,
// waits for their handlers, and returns nil. It returns an error only if
// accepting fails for another reason. ln is normally from Listen.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	sem := make(chan struct{}, s.maxConns())
	var err error
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = aerr
			}
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			s.refuseBusy(c)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.serveConn(ctx, c)
		}()
	}
	cancel()
	ln.Close()
	wg.Wait()
	return err
}

func (s *Server) refuseBusy(c net.Conn) {
	s.log().Warn("control: too many connections, refusing one", "max", s.maxConns())
	c.SetWriteDeadline(time.Now().Add(time.Second))
	writeResponse(c, &Response{Error: errorf("", CodeBusy, "more than %d connections at once; try again", s.maxConns())})
	c.Close()
}

func (s *Server) log() hclog.Logger {
	if s.Logger == nil {
		return hclog.NewNullLogger()
	}
	return s.Logger
}

func (s *Server) maxConns() int   { return orDefault(s.MaxConns, DefaultMaxConns) }
func (s *Server) maxRequest() int { return orDefault(s.MaxRequest, DefaultMaxRequest) }
func (s *Server) readTimeout() time.Duration {
	return orDefault(s.ReadTimeout, DefaultReadTimeout)
}
func (s *Server) writeTimeout() time.Duration {
	return orDefault(s.WriteTimeout, DefaultWriteTimeout)
}

func (s *Server) proc() string {
	if s.Proc == "" {
		return "/proc"
	}
	return s.Proc
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

var errTooLarge = errors.New("request too large")
