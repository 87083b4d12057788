package rules_test

import (
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// The records of a real execve event on x86_64 (Debian 12, kernel 6.12),
// without the type= prefix that auditd adds when it writes the log.
const (
	execSyscall = `audit(1700000000.123:4242): arch=c000003e syscall=59 success=yes exit=0 a0=55d0c7a3e2a0 a1=55d0c7a3e2f0 a2=55d0c7a3e330 a3=8 items=2 ppid=1234 pid=5678 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="true" exe="/usr/bin/true" subj=unconfined key="exec"`
	execExecve  = `audit(1700000000.123:4242): argc=2 a0="true" a1="--version"`
	execCwd     = `audit(1700000000.123:4242): cwd="/home/alice"`
	execPath0   = `audit(1700000000.123:4242): item=0 name="/usr/bin/true" inode=1311 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`
	execPath1   = `audit(1700000000.123:4242): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=1408 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`
	execTitle   = `audit(1700000000.123:4242): proctitle=74727565002D2D76657273696F6E`
	execEOE     = `audit(1700000000.123:4242): `
)

// execEvent returns the execve event, with the SYSCALL record's text
// changed by the replacer pairs (old, new, ...).
func execEvent(t testing.TB, syscallEdits ...string) *record.Event {
	t.Helper()
	sc := strings.NewReplacer(syscallEdits...).Replace(execSyscall)
	return event(t,
		"SYSCALL "+sc,
		"EXECVE "+execExecve,
		"CWD "+execCwd,
		"PATH "+execPath0,
		"PATH "+execPath1,
		"PROCTITLE "+execTitle,
		"EOE "+execEOE,
	)
}

// event parses records given as "TYPENAME payload", as the kernel sends
// them, into an event.
func event(t testing.TB, recs ...string) *record.Event {
	t.Helper()
	ev := &record.Event{}
	for _, s := range recs {
		name, payload, _ := strings.Cut(s, " ")
		typ, ok := record.TypeByName(name)
		if !ok {
			t.Fatalf("unknown record type %q", name)
		}
		var r record.Record
		if err := record.Parse(&r, typ, []byte(payload)); err != nil {
			t.Fatalf("parsing %q: %v", s, err)
		}
		ev.Records = append(ev.Records, r)
	}
	return ev
}

func mustParse(t testing.TB, src string) *rules.Program {
	t.Helper()
	p, err := rules.Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", src, err)
	}
	return p
}
