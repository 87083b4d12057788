package rules_test

import (
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// benchRules are ten rules of the kind an admin writes; the execve event
// below is decided by the ninth.
const benchRules = `
- drop:
    key: [noisy, cron-*]
- drop:
    type: [USER_START, USER_END, CRED_ACQ, CRED_DISP]
- drop:
    exe: {prefix: /usr/lib/systemd/}
- keep:
    syscall: [open, openat]
    success: no
    exit: [-EACCES, -EPERM]
- keep:
    path: [/etc/shadow, /etc/sudoers, {prefix: /etc/sudoers.d/}]
- drop:
    uid: 0
    exe: /usr/sbin/cron
- keep:
    key: [identity, privileged, "mod*"]
- drop:
    field: {tty: (none)}
- keep:
    syscall: [execve, execveat]
    auid: {min: 1000}
    not: {auid: unset}
    exe: "/usr/*/*"
  strip: [PROCTITLE]
- keep:
    type: AVC
- default: drop
`

func BenchmarkMatch(b *testing.B) {
	p := mustParse(b, benchRules)
	ev := execEvent(b)
	if v, i := p.MatchRule(ev); !v.Keep || i != 8 {
		b.Fatalf("got %v by rule %d, want keep by rule 8", v, i)
	}
	b.ReportAllocs()
	loopCPU(b, func() { p.Match(ev) })
}

// typicalRules are ten rules on the SYSCALL record only: keys, syscalls,
// ids and executables, the conditions most rule files use.
const typicalRules = `
- drop: {key: [noisy, cron-*]}
- drop: {type: [USER_START, USER_END, CRED_ACQ, CRED_DISP]}
- drop: {exe: {prefix: /usr/lib/systemd/}}
- keep: {syscall: [open, openat], success: no}
- keep: {key: [identity, privileged]}
- drop: {uid: 0, exe: /usr/sbin/cron}
- keep: {syscall: [init_module, finit_module, delete_module]}
- keep: {type: [AVC, USER_AVC]}
- keep:
    syscall: [execve, execveat]
    auid: {min: 1000}
    not: {auid: unset}
  strip: [PROCTITLE]
- keep: {key: mod*}
- default: drop
`

func BenchmarkMatchTypical(b *testing.B) {
	p := mustParse(b, typicalRules)
	ev := execEvent(b)
	if v, i := p.MatchRule(ev); !v.Keep || i != 8 {
		b.Fatalf("got %v by rule %d, want keep by rule 8", v, i)
	}
	b.ReportAllocs()
	loopCPU(b, func() { p.Match(ev) })
}

// BenchmarkMatchDefault is an event that no rule matches, so every rule is
// tried.
func BenchmarkMatchDefault(b *testing.B) {
	p := mustParse(b, benchRules)
	ev := execEvent(b, "auid=1000", "auid=4294967295")
	if v, i := p.MatchRule(ev); v.Keep || i != -1 {
		b.Fatalf("got %v by rule %d, want the default", v, i)
	}
	b.ReportAllocs()
	loopCPU(b, func() { p.Match(ev) })
}

func BenchmarkParse(b *testing.B) {
	src := []byte(benchRules)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rules.Parse(src, "bench.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatchChain matches one event against the programs of three
// containers, as the router does for an event of a container nested two
// deep: with a Scan, the fields are read once for the three.
func BenchmarkMatchChain(b *testing.B) {
	progs := []*rules.Program{mustParse(b, typicalRules), mustParse(b, benchRules), mustParse(b, typicalRules)}
	ev := execEvent(b)
	b.Run("Match", func(b *testing.B) {
		b.ReportAllocs()
		loopCPU(b, func() {
			for _, p := range progs {
				p.Match(ev)
			}
		})
	})
	b.Run("Scan", func(b *testing.B) {
		b.ReportAllocs()
		var s rules.Scan
		loopCPU(b, func() {
			s.Reset(ev)
			for _, p := range progs {
				p.MatchScan(&s)
			}
		})
	})
}
