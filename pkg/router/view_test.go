package router_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/router"
	"github.com/auditd-ns/auditd-ns/pkg/view"
)

// nsMap is a container's namespaces for the tests: pids by host pid (0 if
// not visible), uids and gids through maps as /proc shows them.
type nsMap struct {
	pids     map[uint32]uint32
	uid, gid view.IDMap
}

func newNSMap(t testing.TB, pids map[uint32]uint32, uidMap, gidMap string) *nsMap {
	t.Helper()
	u, err := view.ParseIDMap([]byte(uidMap))
	if err != nil {
		t.Fatal(err)
	}
	g, err := view.ParseIDMap([]byte(gidMap))
	if err != nil {
		t.Fatal(err)
	}
	return &nsMap{pids: pids, uid: u, gid: g}
}

func (n *nsMap) Pid(p uint32, _ int64) uint32 { return n.pids[p] }
func (n *nsMap) UID(id uint32) uint32         { return n.uid.Map(id) }
func (n *nsMap) GID(id uint32) uint32         { return n.gid.Map(id) }

// setupViews is setup that also returns the router's containers, so that
// a test can set their views.
func setupViews(t testing.TB, srcs ...string) (map[string]*router.Container, map[string]*sink, func(recs ...[2]string) [][]byte) {
	return setupViewsAttr(t, nil, srcs...)
}

func setupViewsAttr(t testing.TB, attr router.Attributor, srcs ...string) (map[string]*router.Container, map[string]*sink, func(recs ...[2]string) [][]byte) {
	t.Helper()
	r, containers, sinks := startRouter(t, attr, srcs...)
	submit := func(recs ...[2]string) [][]byte {
		var given [][]byte
		for _, rec := range recs {
			typ, _ := record.TypeByName(rec[0])
			b := []byte(rec[1])
			given = append(given, b)
			r.Submit(typ, b)
		}
		if err := r.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		return given
	}
	return containers, sinks, submit
}

// A kill from inside a nested container (contid 42 in 7 in 1): the host
// view container (outer) gets the records as the kernel wrote them, the
// container view (mid) gets them translated, its trimmed CONTAINER_ID
// lines too, and the records handed to the router are left as they were.
func TestViewCopyTranslatedHostUnchanged(t *testing.T) {
	cs, sinks, submit := setupViews(t,
		"name: outer\nid: 1\ndeliver: {file: /x/o}\n",
		"name: mid\nid: 7\nparent: outer\ndeliver: {file: /x/m}\n",
	)
	cs["mid"].SetView(newNSMap(t, map[uint32]uint32{5000: 1, 5001: 7, 5002: 8}, "0 100000 65536", "0 200000 65536"))
	ts := "audit(1700000000.123:10): "
	recs := [][2]string{
		{"SYSCALL", ts + `arch=c000003e syscall=62 success=yes exit=0 a0=1392 a1=f a2=0 a3=0 items=0 ppid=5000 pid=5001 auid=101000 uid=100000 gid=200000 euid=100000 suid=100000 fsuid=100000 egid=200000 sgid=200000 fsgid=200000 tty=pts0 ses=4 comm="kill uid=0" exe="/usr/bin/kill" key=(null)`},
		{"CONTAINER_ID", ts + "record=1300 contid=42,^7,^1"},
		{"OBJ_PID", ts + `opid=5002 oauid=101000 ouid=100000 oses=4 obj=unconfined ocomm="sleep"`},
		{"CONTAINER_ID", ts + "record=1318 opid=5002 contid=42,^7,^1"},
		{"PROCTITLE", ts + "proctitle=6B696C6C002D39003230"},
		{"EOE", ts},
	}
	given := submit(recs...)
	mid := waitLines(t, sinks["mid"], len(recs))
	outer := waitLines(t, sinks["outer"], len(recs))
	wantMid := []string{
		`type=SYSCALL msg=audit(1700000000.123:10): arch=c000003e syscall=62 success=yes exit=0 a0=1392 a1=f a2=0 a3=0 items=0 ppid=1 pid=7 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=4294967295 comm="kill uid=0" exe="/usr/bin/kill" key=(null)`,
		`type=UNKNOWN[1340] msg=audit(1700000000.123:10): record=1300 contid=42,^7`,
		`type=OBJ_PID msg=audit(1700000000.123:10): opid=8 oauid=1000 ouid=0 oses=-1 obj=unconfined ocomm="sleep"`,
		`type=UNKNOWN[1340] msg=audit(1700000000.123:10): record=1318 opid=8 contid=42,^7`,
		`type=PROCTITLE msg=audit(1700000000.123:10): proctitle=6B696C6C002D39003230`,
		`type=EOE msg=audit(1700000000.123:10): `,
	}
	if !slices.Equal(mid, wantMid) {
		t.Errorf("container view copy:\n%s\nwant\n%s", strings.Join(mid, "\n"), strings.Join(wantMid, "\n"))
	}
	for i, rec := range recs {
		if string(given[i]) != rec[1] {
			t.Errorf("record %d given to the router changed: %s", i, given[i])
		}
		typ, _ := record.TypeByName(rec[0])
		// outer is the chains' top: its CONTAINER_ID lines are whole.
		want := strings.TrimSuffix(string(record.AppendLine(nil, "", typ, []byte(rec[1]))), "\n")
		if i >= len(outer) || outer[i] != want {
			t.Errorf("host view copy line %d:\n%q\nwant\n%q", i, outer, want)
			break
		}
	}
	if cs["outer"].View() != nil || cs["outer"].Sessions() != nil {
		t.Error("a container never given a view has one")
	}
}

// Each container on the chain sees the event in its own namespaces.
func TestViewNested(t *testing.T) {
	cs, sinks, submit := setupViews(t,
		"name: outer\nid: 1\ndeliver: {file: /x/o}\n",
		"name: inner\nid: 7\nparent: outer\ndeliver: {file: /x/i}\n",
	)
	// outer: host uids 100000-165535 as 0-65535, pids 5000 and 5001 as 10
	// and 11. inner, a user namespace inside outer's: outer's 1000-1999
	// (host 101000-101999) as 0-999; 5001 is its init, 5000 outside it.
	cs["outer"].SetView(newNSMap(t, map[uint32]uint32{5000: 10, 5001: 11}, "0 100000 65536", "0 200000 65536"))
	cs["inner"].SetView(newNSMap(t, map[uint32]uint32{5001: 1}, "0 101000 1000", "0 201000 1000"))
	ts := "audit(1700000000.123:20): "
	submit(
		[2]string{"SYSCALL", ts + `arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=5000 pid=5001 auid=4294967295 uid=101000 gid=201005 euid=100000 comm="sh" exe="/bin/sh" key=(null)`},
		[2]string{"CONTAINER_ID", ts + "record=1300 contid=7,^1"},
		[2]string{"EOE", ts},
	)
	inner := waitLines(t, sinks["inner"], 3)
	outer := waitLines(t, sinks["outer"], 3)
	want := map[string]string{
		"inner": `type=SYSCALL msg=audit(1700000000.123:20): arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=0 pid=1 auid=4294967295 uid=0 gid=5 euid=65534 comm="sh" exe="/bin/sh" key=(null)`,
		"outer": `type=SYSCALL msg=audit(1700000000.123:20): arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=10 pid=11 auid=4294967295 uid=1000 gid=1005 euid=0 comm="sh" exe="/bin/sh" key=(null)`,
	}
	for name, got := range map[string][]string{"inner": inner, "outer": outer} {
		if len(got) != 3 || got[0] != want[name] {
			t.Errorf("%s's copy:\n%s\nwant first\n%s", name, strings.Join(got, "\n"), want[name])
		}
	}
	if inner[1] != `type=UNKNOWN[1340] msg=audit(1700000000.123:20): record=1300 contid=7` {
		t.Errorf("inner's CONTAINER_ID: %s", inner[1])
	}
}

// A session begun by a LOGIN routed to the container is the container's,
// even when its rules leave the LOGIN out of the copies; one begun
// elsewhere reads unset. SetView(nil) goes back to the host view.
func TestViewSessions(t *testing.T) {
	cs, sinks, submit := setupViews(t,
		"name: a\nid: 5\ndeliver: {file: /x/a}\nrules:\n  - drop: {type: LOGIN}\n  - default: keep\n")
	a := cs["a"]
	a.SetView(newNSMap(t, map[uint32]uint32{5001: 3}, "0 0 4294967295", "0 0 4294967295"))
	syscall := func(serial, ses string) [][2]string {
		ts := "audit(1700000000.123:" + serial + "): "
		return [][2]string{
			{"SYSCALL", ts + "arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=5001 auid=1000 uid=0 ses=" + ses + ` comm="x" exe="/x"`},
			{"CONTAINER_ID", ts + "record=1300 contid=5"},
			{"EOE", ts},
		}
	}
	submit(syscall("1", "9")...)
	submit([2]string{"LOGIN", "audit(1700000000.123:2): pid=5001 uid=0 old-auid=4294967295 auid=1000 tty=(none) old-ses=4294967295 ses=9 res=1"},
		[2]string{"CONTAINER_ID", "audit(1700000000.123:2): record=1006 contid=5"},
		[2]string{"EOE", "audit(1700000000.123:2): "})
	submit(syscall("3", "9")...)
	submit(syscall("4", "8")...)
	waitLines(t, sinks["a"], 9) // the first three events are in before the view changes
	a.SetView(nil)
	submit(syscall("5", "8")...)
	got := waitLines(t, sinks["a"], 12)
	var ses []string
	for _, l := range got {
		if strings.HasPrefix(l, "type=SYSCALL") {
			f, _ := record.Field([]byte(l), "ses")
			p, _ := record.Field([]byte(l), "pid")
			ses = append(ses, string(f)+"/"+string(p))
		}
		if strings.HasPrefix(l, "type=LOGIN") {
			t.Errorf("the rules' drop of LOGIN not kept: %s", l)
		}
	}
	want := []string{"4294967295/3", "9/3", "4294967295/3", "8/5001"}
	if !slices.Equal(ses, want) {
		t.Errorf("ses/pid of the SYSCALL copies: %q, want %q", ses, want)
	}
	if a.View() != nil || a.Sessions() == nil || !a.Sessions().Has(9) {
		t.Error("after SetView(nil): view kept or sessions lost")
	}
}

// What a tenant writes in a user message is its own: never translated.
func TestViewUserMessage(t *testing.T) {
	r, cs, sinks := startRouter(t, nil, "name: a\nid: 5\ndeliver: {file: /x/a}\n")
	cs["a"].SetView(newNSMap(t, map[uint32]uint32{5001: 3}, "0 100000 65536", "0 100000 65536"))
	ts := "audit(1700000000.123:30): "
	submitSync(t, r, [2]string{"USER_AVC", ts + `pid=5001 uid=100000 auid=4294967295 ses=4294967295 subj=unconfined msg='pid=5001 uid=100000 auid=100000 msg=' ppid=5001'`},
		[2]string{"CONTAINER_ID", ts + "record=1107 contid=5"})
	flush(r) // a user message has no EOE
	got := waitLines(t, sinks["a"], 2)
	want := `type=USER_AVC msg=audit(1700000000.123:30): pid=3 uid=0 auid=4294967295 ses=4294967295 subj=unconfined msg='pid=5001 uid=100000 auid=100000 msg=' ppid=5001'`
	if len(got) == 0 || got[0] != want {
		t.Errorf("got\n%q\nwant\n%s", got, want)
	}
}

// On a stock kernel (no CONTAINER_ID, attribution by cgroup) a nested
// pair sees the event each in its own view, and the pid the event was
// attributed by is the host's, as the kernel wrote it.
func TestViewCgroupAttributed(t *testing.T) {
	var asked atomic.Uint32
	attr := attrFunc(func(pid, ppid uint32, at int64, dirs []string) int {
		asked.Store(pid)
		for i, d := range dirs {
			if d == "/cg/a/b" {
				return i
			}
		}
		return -1
	})
	cs, sinks, submit := setupViewsAttr(t, attr,
		"name: a\ncgroup: /cg/a\ndeliver: {file: /x/a}\n",
		"name: b\nparent: a\ncgroup: /cg/a/b\ndeliver: {file: /x/b}\n")
	cs["a"].SetView(newNSMap(t, map[uint32]uint32{5000: 30, 5001: 31}, "0 100000 65536", "0 100000 65536"))
	cs["b"].SetView(newNSMap(t, map[uint32]uint32{5001: 1}, "0 100000 65536", "0 100000 65536"))
	ts := "audit(1700000000.123:40): "
	submit([2]string{"SYSCALL", ts + `arch=c000003e syscall=59 success=yes exit=0 ppid=5000 pid=5001 auid=4294967295 uid=100000 comm="sh" exe="/bin/sh" key=(null)`},
		[2]string{"EOE", ts})
	for name, want := range map[string]string{
		"a": "ppid=30 pid=31 auid=4294967295 uid=0 ",
		"b": "ppid=0 pid=1 auid=4294967295 uid=0 ",
	} {
		got := waitLines(t, sinks[name], 2)
		if len(got) != 2 || !strings.Contains(got[0], want) {
			t.Errorf("%s's copy %q, want it to hold %q", name, got, want)
		}
	}
	if asked.Load() != 5001 {
		t.Errorf("attributed by pid %d, want the host's 5001", asked.Load())
	}
}

// Views set and unset while events are routed: every copy is whole, in
// one view or the other (run with -race).
func TestViewSetWhileRouting(t *testing.T) {
	cs, sinks, submit := setupViews(t, "name: a\nid: 5\ndeliver: {file: /x/a}\n")
	ns := newNSMap(t, map[uint32]uint32{5001: 3}, "0 100000 65536", "0 100000 65536")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				cs["a"].SetView(ns)
			} else {
				cs["a"].SetView(nil)
			}
		}
	}()
	const n = 300
	for i := range n {
		ts := fmt.Sprintf("audit(1700000000.123:%d): ", 100+i)
		submit([2]string{"SYSCALL", ts + `ppid=5000 pid=5001 uid=100000 ses=4 comm="x"`},
			[2]string{"CONTAINER_ID", ts + "record=1300 contid=5"}, [2]string{"EOE", ts})
	}
	close(stop)
	<-done
	got := waitLines(t, sinks["a"], 3*n)
	if len(got) != 3*n {
		t.Fatalf("%d lines, want %d", len(got), 3*n)
	}
	for _, l := range got {
		if !strings.HasPrefix(l, "type=SYSCALL") {
			continue
		}
		if !strings.HasSuffix(l, `ppid=5000 pid=5001 uid=100000 ses=4 comm="x"`) && !strings.HasSuffix(l, `ppid=0 pid=3 uid=0 ses=4294967295 comm="x"`) {
			t.Fatalf("copy in neither view: %s", l)
		}
	}
}
