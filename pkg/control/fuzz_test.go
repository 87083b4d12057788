package control

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// nullBackend accepts nothing and knows one container, enough to drive
// every branch of handle with arbitrary input.
type nullBackend struct{ tree *registry.Tree }

func (b nullBackend) Tree() *registry.Tree { return b.tree }
func (nullBackend) Register(context.Context, *registry.Container, RegisterOptions) (ContainerInfo, error) {
	return ContainerInfo{}, ErrUnavailable
}
func (nullBackend) Unregister(context.Context, string, UnregisterOptions) (UnregisterResult, error) {
	return UnregisterResult{}, errors.New("no")
}
func (nullBackend) PushRules(context.Context, string, RulesUpdate) (ContainerInfo, error) {
	return ContainerInfo{}, ErrNotFound
}
func (nullBackend) Containers(context.Context) ([]ContainerInfo, error) { return nil, nil }
func (nullBackend) Status(context.Context) (Status, error)              { return Status{}, nil }

// FuzzHandle feeds arbitrary request lines to a scoped and an unscoped
// server: neither may panic, and every answer is a valid, versioned
// response that is either ok or carries an error code.
func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"op":"register","file":"web.yaml","source":"name: web\nid: 42\nparent: s\ndeliver: {file: /srv/s/web.log}\n"}`,
		`{"v":1,"op":"unregister","name":"web","mode":"drain","timeout_ms":30000}`,
		`{"v":1,"op":"rules-push","name":"web","file":"r.yaml","source":"- keep: {type: EXECVE}\n"}`,
		`{"v":1,"op":"containers"}`,
		`{"v":1,"op":"status"}`,
		`{"v":2}`, `{}`, `[]`, `null`, `{"v":1,"op":"register","source":"- a\n- b"}`,
	} {
		f.Add([]byte(seed))
	}
	c, err := registry.Parse([]byte("name: s\nid: 1\ndeliver: {file: /srv/s/audit.log}\n"), "s.yaml")
	if err != nil {
		f.Fatal(err)
	}
	tree, err := registry.Build([]*registry.Container{c})
	if err != nil {
		f.Fatal(err)
	}
	servers := []*Server{{Backend: nullBackend{tree}}, {Backend: nullBackend{tree}, Scope: "s", Proc: f.TempDir()}}
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, s := range servers {
			r := s.handle(context.Background(), 1, line)
			r.V = Version
			if r.OK == (r.Error != nil) || (r.Error != nil && r.Error.Code == "") {
				t.Fatalf("%q: answer %+v", line, r)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Fatalf("%q: answer does not encode: %v", line, err)
			}
		}
	})
}
