package control_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/control/controltest"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// The host's tree in these tests:
//
//	tenant (contid 100, file target, scoped socket)
//	└── tenant-a (101)
//	    └── tenant-a1 (102)
//	other (200, remote target)
var hostFiles = map[string]string{
	"tenant.yaml": `name: tenant
id: 100
deliver: {file: /srv/audit/tenant/audit.log}
queue: {memory: 4MiB, spool: 64MiB}
socket: /run/auditd-ns/tenant/control.sock
`,
	"tenant-a.yaml": `name: tenant-a
id: 101
parent: tenant
deliver: {file: /srv/audit/tenant/a/audit.log}
`,
	"tenant-a1.yaml": `name: tenant-a1
id: 102
parent: tenant-a
deliver: {file: /srv/audit/tenant/a1/audit.log}
`,
	"other.yaml": `name: other
id: 200
deliver: {remote: "127.0.0.1:60"}
`,
}

func newBackend(t testing.TB) *controltest.Backend {
	t.Helper()
	var cs []*registry.Container
	for file, src := range hostFiles {
		c, err := registry.Parse([]byte(src), file)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	b, err := controltest.New(cs...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sockDir returns a short temporary directory: unix socket paths are
// limited to 107 bytes.
func sockDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// serve runs s on a fresh socket until the test ends and returns its path.
func serve(t testing.TB, s *control.Server) string {
	t.Helper()
	path := filepath.Join(sockDir(t), "control.sock")
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return path
}

func dial(t testing.TB, path string) *control.Client {
	t.Helper()
	c, err := control.Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// raw sends lines as they are and returns the answer to the last one.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{c, bufio.NewReader(c)}
}

func (r *rawConn) roundTrip(t *testing.T, line string) control.Response {
	t.Helper()
	if _, err := r.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("writing %q: %v", line, err)
	}
	return r.read(t)
}

func (r *rawConn) read(t *testing.T) control.Response {
	t.Helper()
	b, err := r.br.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	var resp control.Response
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return resp
}

func wantCode(t *testing.T, err error, code, contains string) {
	t.Helper()
	var e *control.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v, want a *control.Error with code %q", err, code)
	}
	if e.Code != code || !strings.Contains(e.Message, contains) {
		t.Fatalf("got %v\nwant code %q and a message containing %q", e, code, contains)
	}
}

func names(cs []control.ContainerInfo) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Name)
	}
	return strings.Join(s, " ")
}

// fakeChains is a control.Chains at the boundary: the chains of the test
// tree above, every id from 1000 up inside tenant, and no other.
type fakeChains map[uint64][]uint64

var hostChains = fakeChains{100: {100}, 101: {101, 100}, 102: {102, 101, 100}, 200: {200}, 201: {201, 200}}

func (f fakeChains) Chain(id uint64) ([]uint64, error) {
	if c, ok := f[id]; ok {
		return c, nil
	}
	if id >= 1000 && id < 100000 {
		return []uint64{id, 100}, nil
	}
	return nil, fmt.Errorf("no op=set record seen for contid %d: %w", id, control.ErrNoChain)
}

// policy returns a Server.Policy giving p with the fake chains.
func policy(p control.ScopePolicy) func() *control.ScopePolicy {
	p.Chains = hostChains
	return func() *control.ScopePolicy { return &p }
}
