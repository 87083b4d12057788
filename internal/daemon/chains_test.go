package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/control"
)

func TestChainBook(t *testing.T) {
	var b chainBook
	for _, r := range []string{
		"audit(1.001:1): op=set opid=10 contid=7 old-contid=-1 pid=1 res=1",
		"audit(1.001:2): op=set opid=11 contid=42 old-contid=7 pid=10 res=1",
		"audit(1.001:3): op=set opid=12 contid=43 old-contid=42 pid=11 res=1",
		"audit(1.001:4): op=set opid=13 contid=99 old-contid=7 pid=10 res=0", // failed: not a container
	} {
		b.note(1020, []byte(r))
	}
	b.note(1300, []byte("audit(1.001:5): contid=98 old-contid=7 res=1"))
	for id, want := range map[uint64][]uint64{7: {7}, 42: {42, 7}, 43: {43, 42, 7}, 99: nil, 98: nil} {
		got, ok := b.chain(id)
		if ok != (want != nil) || !slices.Equal(got, want) {
			t.Errorf("chain of %d: %v %v, want %v", id, got, ok, want)
		}
	}
	b.note(1020, []byte("audit(1.001:6): op=drop opid=12 contid=-1 old-contid=43,^42,^7 res=1"))
	if got, ok := b.chain(43); ok {
		t.Errorf("a dropped contid still has a chain: %v", got)
	}
	b.reset() // the kernel lost records
	if got, ok := b.chain(42); ok {
		t.Errorf("after lost records the book still answers: %v", got)
	}
}

// fakeProc writes a process tree: pid → {ppid, start, contid ("" for no
// audit_containerid file)}.
func fakeProc(t *testing.T, patched bool, procs map[int][3]string) string {
	t.Helper()
	dir := t.TempDir()
	if patched {
		procs[0] = [3]string{}
	}
	for pid, p := range procs {
		name := fmt.Sprint(pid)
		if pid == 0 {
			name = "self"
		}
		pd := filepath.Join(dir, name)
		if err := os.MkdirAll(pd, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (a (b) c) S %s 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %s 0 0\n", pid, p[0], p[1])
		os.WriteFile(filepath.Join(pd, "stat"), []byte(stat), 0o644)
		if p[2] != "" || pid == 0 {
			os.WriteFile(filepath.Join(pd, "audit_containerid"), []byte(p[2]+"\n"), 0o600)
		}
	}
	return dir
}

func TestProcChain(t *testing.T) {
	const unset = "18446744073709551615"
	proc := fakeProc(t, true, map[int][3]string{
		1:  {"0", "1", unset},
		50: {"1", "100", "7"},   // the host's orchestrator gave 7
		60: {"50", "200", "7"},  // inherited
		70: {"60", "300", "42"}, // nested in 7
		80: {"70", "400", "42"},
		90: {"80", "500", "43"},
		95: {"1", "50", "55"},   // elsewhere
		96: {"95", "600", "66"}, // nested in 55
		97: {"1", "700", "77"},  // its parent was reaped: reparented to init
		98: {"99", "100", "88"}, // its parent pid was reused by a younger task
		99: {"1", "900", "7"},
	})
	for id, want := range map[uint64][]uint64{7: {7}, 42: {42, 7}, 43: {43, 42, 7}, 66: {66, 55}, 77: {77}} {
		got, err := procChain(proc, id)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("chain of %d: %v %v, want %v", id, got, err, want)
		}
	}
	for _, id := range []uint64{88, 12345} {
		if got, err := procChain(proc, id); !errors.Is(err, control.ErrNoChain) {
			t.Errorf("chain of %d: %v %v, want ErrNoChain", id, got, err)
		}
	}
	stock := fakeProc(t, false, map[int][3]string{1: {"0", "1", ""}})
	if _, err := procChain(stock, 7); !errors.Is(err, control.ErrNoChain) {
		t.Errorf("stock kernel: %v", err)
	}
}

// TestScopeIDAncestry: the daemon's chains decide a scoped register of an
// id: inside the scope accepted, elsewhere or unknown refused.
func TestScopeIDAncestry(t *testing.T) {
	var b chainBook
	b.note(1020, []byte("audit(1.001:1): op=set opid=10 contid=7 old-contid=-1 res=1"))
	b.note(1020, []byte("audit(1.001:2): op=set opid=11 contid=42 old-contid=7 res=1"))
	b.note(1020, []byte("audit(1.001:3): op=set opid=12 contid=55 old-contid=-1 res=1"))
	d, dir := testDaemon(t, "name: s\nid: 7\ndeliver: {file: %[1]s/s/audit.log}\nsocket: %[1]s/s/ctl.sock\n")
	tree := backend{d}.Tree()
	p := &control.ScopePolicy{Chains: chains{book: &b, proc: fakeProc(t, false, map[int][3]string{})}}
	for id, ok := range map[uint64]bool{42: true, 55: false, 7: false, 1234: false} {
		c, err := parseContainer(fmt.Sprintf("name: c\nid: %d\nparent: s\ndeliver: {file: %[2]s/s/c.log, beneath: %[2]s/s}\n", id, dir))
		if err != nil {
			t.Fatal(err)
		}
		err = control.CheckScope(tree, "s", c, p)
		if (err == nil) != ok {
			t.Errorf("id %d: %v, want ok=%v", id, err, ok)
		}
	}
}
