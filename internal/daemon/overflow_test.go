package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// TestRouterOverflowReported: records the router leaves unrouted (more
// waited than its backlog) reached no container, so the poll says so in
// the host log, once per rise, with the count.
func TestRouterOverflowReported(t *testing.T) {
	dir := t.TempDir()
	d := newDaemon(t.Context(), config.Default(), hclog.NewNullLogger())
	c, err := registry.Parse([]byte("name: a\nid: 1\ndeliver: {file: /x/a}\n"), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := registry.Build([]*registry.Container{c})
	if err != nil {
		t.Fatal(err)
	}
	d.router = router.New(router.Options{Backlog: 1024}) // not running: nothing is taken
	d.router.Set(tree, map[string]*router.Container{"a": router.NewContainer(c, discard{})})
	path := filepath.Join(dir, "audit.log")
	hl, err := hostlog.Open(hostlog.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	d.hlog = hl

	d.checkOverflow()
	for i := range 4000 {
		d.router.Submit(1300, fmt.Appendf(nil, "audit(1700000000.123:%d): pid=1", i+1))
	}
	d.checkOverflow()
	d.checkOverflow() // no rise: no second record
	hl.Flush()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Count(string(b), "op=router-overflow")
	if got != 1 || !strings.Contains(string(b), "unrouted=2560 new=2560") {
		t.Errorf("host log has %d router-overflow records, want 1 saying unrouted=2560 new=2560:\n%s", got, b)
	}
}

type discard struct{}

func (discard) PushAll([][]byte) {}
