package control_test

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
)

const webYAML = `name: web
id: 300
deliver: {remote: "127.0.0.1:6000"}
rules:
  - keep: {type: EXECVE}
`

func TestHostSocket(t *testing.T) {
	b := newBackend(t)
	c := dial(t, serve(t, &control.Server{Backend: b}))
	ctx := context.Background()

	info, err := c.Register(ctx, "web.yaml", []byte(webYAML), false)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "web" || info.ID == nil || *info.ID != 300 || info.Target != "remote:127.0.0.1:6000" || info.Rules != 1 {
		t.Errorf("register answered %+v", info)
	}
	_, err = c.Register(ctx, "web.yaml", []byte(webYAML), false)
	wantCode(t, err, control.CodeExists, `"web"`)
	if !errors.Is(err, control.ErrExists) {
		t.Errorf("errors.Is(%v, ErrExists) is false", err)
	}
	if _, err := c.Register(ctx, "web.yaml", []byte(strings.Replace(webYAML, "6000", "6001", 1)), true); err != nil {
		t.Fatalf("replace: %v", err)
	}

	cs, err := c.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(cs), "other tenant tenant-a tenant-a1 web"; got != want {
		t.Errorf("containers: got %q, want %q", got, want)
	}

	info, err = c.PushRules(ctx, "web", "web-rules.yaml", []byte("- drop: {type: PATH}\n- keep: {type: EXECVE}\n- default: drop\n"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Rules != 2 {
		t.Errorf("after rules-push the container has %d rules, want 2", info.Rules)
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Kernel == nil || st.HostLog == nil || st.Router == nil || len(st.Containers) != 5 {
		t.Errorf("status: %+v", st)
	}

	res, err := c.Unregister(ctx, "web", control.ModeSpool, 0)
	if err != nil || res.Mode != control.ModeSpool || res.Name != "web" {
		t.Fatalf("unregister spool: %+v, %v", res, err)
	}
	res, err = c.Unregister(ctx, "other", "", 2*time.Second)
	if err != nil || res.Mode != control.ModeDrain || !res.Drained {
		t.Fatalf("unregister drain: %+v, %v", res, err)
	}
	_, err = c.Unregister(ctx, "other", "", 0)
	wantCode(t, err, control.CodeNotFound, `"other"`)
	_, err = c.Unregister(ctx, "tenant", "", 0)
	wantCode(t, err, control.CodeConflict, "still has nested containers")

	want := []string{"register web", "register web", "rules-push web", "unregister web spool 30s", "unregister other drain 2s"}
	if got := b.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("backend calls:\ngot  %q\nwant %q", got, want)
	}
}

func TestRefusedRequests(t *testing.T) {
	c := dial(t, serve(t, &control.Server{Backend: newBackend(t)}))
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		call     func() error
		code     string
		contains string
	}{
		{"register bad yaml", func() error {
			_, err := c.Register(ctx, "bad.yaml", []byte("name: x\nid: 5\n"), false)
			return err
		}, control.CodeInvalid, "bad.yaml:1:1: deliver is missing"},
		{"register unknown parent", func() error {
			_, err := c.Register(ctx, "p.yaml", []byte("name: x\nid: 5\nparent: nope\ndeliver: {file: /x}\n"), false)
			return err
		}, control.CodeInvalid, `p.yaml:3:1: parent "nope" is not a registered container`},
		{"register nothing", func() error {
			_, err := c.Register(ctx, "", nil, false)
			return err
		}, control.CodeBadRequest, `"source"`},
		{"rules bad yaml", func() error {
			_, err := c.PushRules(ctx, "other", "r.yaml", []byte("- keep: {nosuch: 1}\n"))
			return err
		}, control.CodeInvalid, "r.yaml:1:"},
		{"rules nothing", func() error {
			_, err := c.PushRules(ctx, "other", "r.yaml", nil)
			return err
		}, control.CodeBadRequest, `push "[]"`},
		{"rules unknown container", func() error {
			_, err := c.PushRules(ctx, "nope", "r.yaml", []byte("- keep: {type: EXECVE}\n"))
			return err
		}, control.CodeNotFound, `"nope"`},
		{"unregister bad mode", func() error {
			_, err := c.Unregister(ctx, "other", "later", 0)
			return err
		}, control.CodeBadRequest, `mode "later"`},
		{"unregister too long", func() error {
			_, err := c.Unregister(ctx, "other", "", time.Hour)
			return err
		}, control.CodeBadRequest, "timeout_ms 3600000"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code, tc.contains) })
	}
}

func TestProtocolErrors(t *testing.T) {
	path := serve(t, &control.Server{Backend: newBackend(t)})
	r := dialRaw(t, path)
	for _, tc := range []struct{ line, code, contains string }{
		{`{"v":1,"op":"status"`, control.CodeMalformed, "not a JSON object"},
		{`hello`, control.CodeMalformed, "invalid character"},
		{`{"op":"status"}`, control.CodeVersion, `"v" is missing`},
		{`{"v":2,"op":"status"}`, control.CodeVersion, "version 2 is not supported"},
		{`{"v":1,"op":"launch"}`, control.CodeUnknownOp, `unknown op "launch"`},
		{`{"v":1}`, control.CodeUnknownOp, `"op" is missing`},
		{`{"v":1,"op":"status","verbose":true}`, control.CodeMalformed, `unknown field "verbose"`},
		{`{"v":1,"op":"unregister","name":7}`, control.CodeMalformed, "Request.name"},
	} {
		resp := r.roundTrip(t, tc.line)
		if resp.OK || resp.V != control.Version || resp.Error == nil || resp.Error.Code != tc.code || !strings.Contains(resp.Error.Message, tc.contains) {
			t.Errorf("%s: got %+v %+v, want code %q containing %q", tc.line, resp, resp.Error, tc.code, tc.contains)
		}
	}
	// The same connection still serves good requests.
	if resp := r.roundTrip(t, `{"v":1,"op":"containers"}`); !resp.OK || len(resp.Containers) != 4 {
		t.Errorf("containers after errors: %+v", resp)
	}
}

func TestOversizedRequest(t *testing.T) {
	path := serve(t, &control.Server{Backend: newBackend(t), MaxRequest: 4096})
	r := dialRaw(t, path)
	big := `{"v":1,"op":"register","source":"` + strings.Repeat("x", 8000) + `"}`
	go r.Write([]byte(big + "\n")) // the server may close before reading it all
	resp := r.read(t)
	if resp.OK || resp.Error == nil || resp.Error.Code != control.CodeTooLarge || !strings.Contains(resp.Error.Message, "4096") {
		t.Fatalf("got %+v %v", resp, resp.Error)
	}
	if _, err := r.br.ReadByte(); err == nil {
		t.Error("the connection stayed open after an oversized request")
	}
	// A request of exactly the limit is accepted.
	line := `{"v":1,"op":"status"}`
	line = line[:len(line)-1] + strings.Repeat(" ", 4096-len(line)-1) + "}"
	if resp := dialRaw(t, path).roundTrip(t, line); !resp.OK {
		t.Errorf("a request of exactly MaxRequest bytes: %+v", resp.Error)
	}
}

func TestClientGoneMidRequest(t *testing.T) {
	path := serve(t, &control.Server{Backend: newBackend(t)})
	for i := 0; i < 20; i++ {
		r := dialRaw(t, path)
		r.Write([]byte(`{"v":1,"op":"regis`))
		r.Close()
	}
	// One that sends a request and leaves without reading the answer.
	r := dialRaw(t, path)
	r.Write([]byte(`{"v":1,"op":"status"}` + "\n"))
	r.Close()
	c := dial(t, path)
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("status after clients left mid-request: %v", err)
	}
}

func TestIdleConnectionTimesOut(t *testing.T) {
	path := serve(t, &control.Server{Backend: newBackend(t), ReadTimeout: 100 * time.Millisecond})
	r := dialRaw(t, path)
	r.Write([]byte(`{"v":1,`))
	if _, err := r.br.ReadByte(); err == nil {
		t.Fatal("a connection that stalled mid-request was not closed")
	}
	if _, err := dial(t, path).Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTooManyConnections(t *testing.T) {
	path := serve(t, &control.Server{Backend: newBackend(t), MaxConns: 2})
	a, b := dial(t, path), dial(t, path)
	for _, c := range []*control.Client{a, b} { // both are being served
		if _, err := c.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	resp := dialRaw(t, path).read(t)
	if resp.Error == nil || resp.Error.Code != control.CodeBusy {
		t.Fatalf("third connection: %+v", resp)
	}
	a.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dial(t, path)
		_, err := c.Status(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a slot was not freed after a client left: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClientContext(t *testing.T) {
	path := serve(t, &control.Server{Backend: newBackend(t)})
	c := dial(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Status(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("status with a cancelled context: %v", err)
	}
}

func TestWireConstantsDistinct(t *testing.T) {
	for _, set := range [][]string{
		{control.OpRegister, control.OpUnregister, control.OpRulesPush, control.OpContainers, control.OpStatus},
		{control.CodeMalformed, control.CodeVersion, control.CodeUnknownOp, control.CodeTooLarge, control.CodeBadRequest,
			control.CodeInvalid, control.CodeNotFound, control.CodeExists, control.CodeConflict, control.CodeForbidden, control.CodeBusy,
			control.CodeUnavailable, control.CodeTimeout, control.CodeInternal},
		{control.ModeDrain, control.ModeSpool},
		{control.AttributionContid, control.AttributionCgroup},
	} {
		seen := map[string]bool{}
		for _, v := range set {
			if v == "" || seen[v] {
				t.Errorf("%q is empty or repeated in %q", v, set)
			}
			seen[v] = true
		}
	}
}

func TestClientUnusableAfterCancel(t *testing.T) {
	// A server that reads requests and never answers.
	path := filepath.Join(sockDir(t), "mute.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c := dial(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Status(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call that timed out: %v", err)
	}
	// Its answer could still come: the client must not read it as the
	// answer to the next request.
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "unusable") {
		t.Fatalf("a call after a timed-out one: %v", err)
	}
}

func BenchmarkContainersRoundTrip(b *testing.B) {
	c := dial(b, serve(b, &control.Server{Backend: newBackend(b)}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Containers(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPushEmptyRules(t *testing.T) {
	c := dial(t, serve(t, &control.Server{Backend: newBackend(t)}))
	info, err := c.PushRules(context.Background(), "other", "r.yaml", []byte("[]\n"))
	if err != nil || info.Rules != 0 {
		t.Fatalf("pushing []: %+v %v", info, err)
	}
}

// TestUnregisterOwned: an unregister that names an owner removes only a
// container registered with that owner, and only the host's socket
// registers a container with an owner.
func TestUnregisterOwned(t *testing.T) {
	b := newBackend(t)
	c := dial(t, serve(t, &control.Server{Backend: b}))
	ctx := context.Background()
	_, err := c.UnregisterOwned(ctx, "other", "oci-hook", control.ModeDrain, time.Second)
	wantCode(t, err, control.CodeConflict, `"other": conflict: it was not registered by oci-hook`)
	if b.Tree().ByName("other") == nil {
		t.Fatal("a container of the host admin was unregistered by an owner's request")
	}
	if _, err := c.Register(ctx, "h.yaml", []byte("name: h\nid: 7\nowner: oci-hook\ndeliver: {file: /x}\n"), false); err != nil {
		t.Fatal(err)
	}
	if cs, _ := c.Containers(ctx); len(cs) == 0 || cs[0].Owner != "oci-hook" {
		t.Errorf("containers lists no owner: %+v", cs)
	}
	if _, err := c.UnregisterOwned(ctx, "h", "oci-hook", control.ModeDrain, time.Second); err != nil || b.Tree().ByName("h") != nil {
		t.Errorf("the owner's unregister: %v", err)
	}

	scoped := dial(t, serve(t, &control.Server{Backend: b, Scope: "tenant"}))
	_, err = scoped.Register(ctx, "s.yaml", []byte("name: s1\nid: 150\nparent: tenant\nowner: oci-hook\ndeliver: {file: /srv/audit/tenant/s1.log}\n"), false)
	wantCode(t, err, control.CodeForbidden, `owner "oci-hook": only the host's socket`)
	if b.Tree().ByName("s1") != nil {
		t.Error("a scoped socket registered a container with an owner")
	}
}
