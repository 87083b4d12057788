package rules_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// Other events seen on a Debian host, as the kernel sends them.
const (
	openFailed = `audit(1700000001.500:4300): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c a1=7ffc2b1a4e10 a2=0 a3=0 items=1 ppid=900 pid=901 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=pts1 ses=4 comm="cat" exe="/usr/bin/cat" subj=unconfined key="identity"`
	openPath   = `audit(1700000001.500:4300): item=0 name="/etc/shadow" inode=2097 dev=08:01 mode=0100640 ouid=0 ogid=42 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`
	// i386 execve: syscall 11 is execve there, 59 is olduname.
	exec32 = `audit(1700000002.000:4400): arch=40000003 syscall=11 success=yes exit=0 a0=ffd0 a1=ffd4 a2=ffd8 a3=0 items=2 ppid=1 pid=77 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="sh" exe="/bin/sh" subj=unconfined key=(null)`
	// exe and path with a space are written in hex.
	hexSyscall = `audit(1700000003.000:4500): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=1 ppid=1 pid=80 auid=1000 uid=1000 gid=1000 euid=0 suid=0 fsuid=0 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="my tool" exe=2F6F70742F6D7920746F6F6C2F62696E2F72756E subj=unconfined key=707269760165786563`
	hexPath    = `audit(1700000003.000:4500): item=0 name=2F6F70742F6D7920746F6F6C2F62696E2F72756E inode=9 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`
	userLogin  = `audit(1700000004.000:4600): pid=1500 uid=0 auid=1000 ses=5 subj=unconfined msg='op=login id=1000 exe="/usr/sbin/sshd" hostname=10.0.0.9 addr=10.0.0.9 terminal=ssh res=success'`
	avc        = `audit(1700000005.000:4700): apparmor="DENIED" operation="open" class="file" profile="/usr/sbin/cupsd" name="/etc/ssl/private/" pid=600 comm="cupsd" requested_mask="r" denied_mask="r" fsuid=0 ouid=0`
)

func events(t testing.TB) map[string]*record.Event {
	return map[string]*record.Event{
		"exec":     execEvent(t),
		"open":     event(t, "SYSCALL "+openFailed, "PATH "+openPath, "PROCTITLE "+execTitle, "EOE "+execEOE),
		"exec32":   event(t, "SYSCALL "+exec32, "EXECVE "+execExecve, "EOE "+execEOE),
		"hex":      event(t, "SYSCALL "+hexSyscall, "PATH "+hexPath, "EOE "+execEOE),
		"login":    event(t, "USER_LOGIN "+userLogin),
		"avc":      event(t, "AVC "+avc, "SYSCALL "+openFailed),
		"empty":    {},
		"rootexec": execEvent(t, "euid=1000", "euid=0", "uid=1000", "uid=0", "auid=1000", "auid=4294967295"),
	}
}

// TestConditions runs each condition alone ("- keep: {COND}" then
// "- default: drop") against every event and lists the events it keeps.
func TestConditions(t *testing.T) {
	evs := events(t)
	all := []string{"exec", "open", "exec32", "hex", "login", "avc", "empty", "rootexec"}
	tests := []struct {
		cond string
		keep []string
	}{
		{`{}`, all},
		{`~`, all},
		{`{type: EXECVE}`, []string{"exec", "exec32", "rootexec"}},
		{`{type: [USER_LOGIN, AVC]}`, []string{"login", "avc"}},
		{`{type: 1112}`, []string{"login"}},
		{`{syscall: execve}`, []string{"exec", "exec32", "hex", "rootexec"}},
		{`{syscall: 59}`, []string{"exec", "hex", "rootexec"}},
		{`{syscall: 11}`, []string{"exec32"}},
		{`{syscall: olduname}`, nil}, // 59 on i386 only; exec32 is syscall 11
		{`{syscall: [openat, open]}`, []string{"open", "avc"}},
		{`{arch: i386}`, []string{"exec32"}},
		{`{arch: [x86_64], syscall: execve}`, []string{"exec", "hex", "rootexec"}},
		{`{success: no}`, []string{"open", "avc"}},
		{`{success: yes}`, []string{"exec", "exec32", "hex", "rootexec"}},
		{`{success: false}`, []string{"open", "avc"}},
		{`{exit: -EACCES}`, []string{"open", "avc"}},
		{`{exit: [-13]}`, []string{"open", "avc"}},
		{`{exit: {max: -1}}`, []string{"open", "avc"}},
		{`{exit: 0}`, []string{"exec", "exec32", "hex", "rootexec"}},
		{`{uid: 0}`, []string{"exec32", "login", "rootexec"}},
		{`{uid: [1000, 1001]}`, []string{"exec", "open", "hex", "avc"}},
		{`{auid: unset}`, []string{"exec32", "rootexec"}},
		{`{auid: {min: 1000}}`, []string{"exec", "open", "exec32", "hex", "login", "avc", "rootexec"}},
		{`{auid: {min: 1000, max: 1000}}`, []string{"exec", "hex", "login"}},
		{`{auid: {min: 1000}, not: {auid: unset}}`, []string{"exec", "open", "hex", "login", "avc"}},
		{`{euid: 0}`, []string{"exec32", "hex", "rootexec"}},
		{`{euid: 0, not: {uid: 0}}`, []string{"hex"}},
		{`{key: exec}`, []string{"exec", "rootexec", "hex"}}, // hex key is "priv\x01exec": two keys
		{`{key: identity}`, []string{"open", "avc"}},
		{`{key: "ident*"}`, []string{"open", "avc"}},
		{`{key: {prefix: id}}`, []string{"open", "avc"}},
		{`{key: priv}`, []string{"hex"}},
		{`{key: "priv*"}`, []string{"hex"}},
		{`{exe: /usr/bin/true}`, []string{"exec", "rootexec"}},
		{`{exe: "/usr/bin/*"}`, []string{"exec", "open", "avc", "rootexec"}},
		{`{exe: "/usr/*"}`, nil}, // * does not match /
		{`{exe: {prefix: /usr/}}`, []string{"exec", "open", "login", "avc", "rootexec"}},
		{`{exe: {exact: "/usr/bin/*"}}`, nil},
		{`{exe: /opt/my tool/bin/run}`, []string{"hex"}},
		{`{exe: {prefix: /opt/my }}`, []string{"hex"}},
		{`{exe: "/opt/my?tool/*/run"}`, []string{"hex"}},
		{`{exe: /usr/sbin/sshd}`, []string{"login"}},
		{`{path: /etc/shadow}`, []string{"open"}},
		{`{path: /lib64/ld-linux-x86-64.so.2}`, []string{"exec", "rootexec"}},
		{`{path: "/lib*/ld-*"}`, []string{"exec", "rootexec"}},
		{`{path: {prefix: /etc/}}`, []string{"open"}},
		{`{path: "/opt/my tool/bin/run"}`, []string{"hex"}},
		{`{path: {glob: "/opt/*/bin/run"}}`, []string{"hex"}},
		{`{path: /etc/ssl/private/}`, nil}, // name= of an AVC record is not a PATH
		{`{field: {tty: pts0}}`, []string{"exec", "hex", "rootexec"}},
		{`{field: {tty: [pts0, pts1]}}`, []string{"exec", "open", "hex", "avc", "rootexec"}},
		{`{field: {tty: (none)}}`, []string{"exec32"}},
		{`{field: {nametype: NORMAL, ogid: 42}}`, []string{"open"}},
		{`{field: {comm: my tool}}`, []string{"hex"}},
		{`{field: {apparmor: DENIED}}`, []string{"avc"}},
		{`{field: {terminal: ssh}}`, []string{"login"}},
		{`{field: {a1: --version}}`, []string{"exec", "exec32", "rootexec"}},
		{`{not: {type: SYSCALL}}`, []string{"login", "empty"}},
		{`{syscall: execve, uid: 1000, exe: /usr/bin/true, key: exec, success: yes}`, []string{"exec"}},
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			p := mustParse(t, "- keep: "+tt.cond+"\n- default: drop\n")
			want := map[string]bool{}
			for _, n := range tt.keep {
				want[n] = true
			}
			for _, n := range all {
				if got := p.Match(evs[n]).Keep; got != want[n] {
					t.Errorf("event %s: got keep=%v, want %v", n, got, want[n])
				}
			}
		})
	}
}

func TestFirstMatchDecides(t *testing.T) {
	p := mustParse(t, `
- drop:
    key: exec
- keep:
    syscall: execve
- keep:
    type: SYSCALL
  strip: [PROCTITLE]
- default: drop
`)
	evs := events(t)
	tests := []struct {
		event string
		want  string
		rule  int
	}{
		{"exec", "drop", 0},
		{"exec32", "keep", 1},
		{"open", "keep strip PROCTITLE", 2},
		{"login", "drop", -1},
		{"empty", "drop", -1},
	}
	for _, tt := range tests {
		v, rule := p.MatchRule(evs[tt.event])
		if got := v.String(); got != tt.want || rule != tt.rule {
			t.Errorf("event %s: got %s by rule %d, want %s by rule %d", tt.event, got, rule, tt.want, tt.rule)
		}
	}
}

func TestDefault(t *testing.T) {
	ev := execEvent(t)
	tests := []struct {
		src  string
		want string
	}{
		{"", "keep"},
		{"# nothing but a comment\n", "keep"},
		{"[]", "keep"},
		{"- drop: {type: AVC}", "keep"},
		{"- default: drop", "drop"},
		{"- default: keep", "keep"},
		{"- default: keep\n  strip: [PROCTITLE, EXECVE]", "keep strip EXECVE,PROCTITLE"},
		{"- drop: {type: AVC}\n- default: drop", "drop"},
	}
	for _, tt := range tests {
		p := mustParse(t, tt.src)
		if got := p.Match(ev).String(); got != tt.want {
			t.Errorf("%q: got %s, want %s", tt.src, got, tt.want)
		}
		if got := p.Default().String(); got != tt.want {
			t.Errorf("%q: Default() = %s, want %s", tt.src, got, tt.want)
		}
	}
}

func TestNilProgramKeepsAll(t *testing.T) {
	var p *rules.Program
	v := p.Match(execEvent(t))
	if !v.Keep || v.Strip.Len() != 0 || p.Len() != 0 {
		t.Errorf("nil program: got %v, len %d", v, p.Len())
	}
}

func TestStrip(t *testing.T) {
	p := mustParse(t, `
- keep:
    syscall: execve
  strip: [PROCTITLE, CWD, 1307, EOE]
`)
	ev := execEvent(t)
	v := p.Match(ev)
	var kept []string
	for _, r := range ev.Records {
		if v.Keeps(r.Type) {
			kept = append(kept, record.TypeName(r.Type))
		}
	}
	if got, want := fmt.Sprint(kept), "[SYSCALL EXECVE PATH PATH]"; got != want {
		t.Errorf("kept %s, want %s", got, want)
	}
	if v.Strip.Len() != 3 {
		t.Errorf("strip set %v has %d types, want 3 (CWD is 1307)", v.Strip, v.Strip.Len())
	}
	drop := rules.Verdict{}
	if drop.Keeps(1300) {
		t.Error("a drop verdict keeps records")
	}
}

func TestTypeSet(t *testing.T) {
	s, ok := rules.NewTypeSet(1327, 1307, 1327)
	if !ok || s.Len() != 2 || !s.Has(1307) || s.Has(1300) || s.String() != "CWD,PROCTITLE" {
		t.Errorf("got %v %v", s, ok)
	}
	many := make([]uint16, rules.MaxStrip+1)
	for i := range many {
		many[i] = uint16(1300 + i)
	}
	if _, ok := rules.NewTypeSet(many...); ok {
		t.Errorf("NewTypeSet accepted %d types", len(many))
	}
	a, _ := rules.NewTypeSet(1, 2)
	b, _ := rules.NewTypeSet(2, 1)
	if a != b {
		t.Error("sets with the same types compare unequal")
	}
}

// TestQuotedSpace checks that fields are found as record.Field finds them
// when a double-quoted value holds a space (user messages may have one).
func TestQuotedSpace(t *testing.T) {
	for _, tt := range []struct {
		text string
		cond string
		keep bool
	}{
		{`pid=1 uid=0 acct="a key=evil" key=good`, "{key: evil}", false},
		{`pid=1 uid=0 acct="a key=evil" key=good`, "{key: good}", true},
		{`pid=1 uid=0 acct="a key=evil" key=good`, "{field: {key: good}}", true},
		{`pid=1 acct="x uid=5" uid=0`, "{uid: 5}", false},
		{`pid=1 acct="x uid=5" uid=0`, "{uid: 0}", true},
		// The quote after cwd= does not open a value: msg=' does.
		{`pid=1 msg='cwd="/tmp x key=evil" key=good'`, "{key: evil\"}", true},
		{`pid=1 msg='cwd="/tmp x key=evil" key=good'`, "{key: good}", false},
		{`pid=1 msg='cwd="/tmp key=evil"`, "{key: evil\"}", true},
		{`a="x"b="y key=1" key=2`, "{key: 1\"}", true},
		{`a="unclosed key=1`, "{key: \"1\"}", false},
	} {
		ev := event(t, "USER_CMD audit(1700000006.000:4800): "+tt.text)
		p := mustParse(t, "- keep: "+tt.cond+"\n- default: drop")
		if got := p.Match(ev).Keep; got != tt.keep {
			v, _ := ev.Records[0].Field("key")
			t.Errorf("%s on %s: got keep=%v, want %v (record.Field key: %q)", tt.cond, tt.text, got, tt.keep, v)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	p := mustParse(t, benchRules)
	for name, ev := range events(t) {
		if n := testing.AllocsPerRun(50, func() { p.Match(ev) }); n != 0 {
			t.Errorf("event %s: %v allocations per Match", name, n)
		}
	}
}

// TestConcurrentMatch shares one Program between goroutines while another
// swaps programs, as a registry does; run with -race.
func TestConcurrentMatch(t *testing.T) {
	var cur atomic.Pointer[rules.Program]
	cur.Store(mustParse(t, benchRules))
	evs := events(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				for _, ev := range evs {
					cur.Load().Match(ev)
				}
			}
		})
	}
	for range 50 {
		cur.Store(mustParse(t, typicalRules))
	}
	wg.Wait()
}

// TestScan checks that MatchScan decides as MatchRule does, for several
// programs on one Scan.
func TestScan(t *testing.T) {
	progs := []*rules.Program{mustParse(t, benchRules), mustParse(t, typicalRules), nil,
		mustParse(t, "- keep: {not: {type: SYSCALL}}\n- default: drop")}
	var s rules.Scan
	if v, _ := progs[3].MatchScan(&s); v.Keep != true {
		t.Errorf("zero Scan: got %v, want keep (an empty event has no SYSCALL)", v)
	}
	for name, ev := range events(t) {
		s.Reset(ev)
		for i, p := range progs {
			wantV, wantI := p.MatchRule(ev)
			if gotV, gotI := p.MatchScan(&s); gotV != wantV || gotI != wantI {
				t.Errorf("event %s, program %d: MatchScan %v by %d, MatchRule %v by %d", name, i, gotV, gotI, wantV, wantI)
			}
		}
		if n := testing.AllocsPerRun(20, func() { s.Reset(ev); progs[0].MatchScan(&s) }); n != 0 {
			t.Errorf("event %s: %v allocations per MatchScan", name, n)
		}
	}
}
