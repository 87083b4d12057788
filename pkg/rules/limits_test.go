package rules_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

func TestSize(t *testing.T) {
	p := mustParse(t, `
- drop: {key: noisy}
- keep: {syscall: [execve, execveat], success: yes, auid: [{min: 1000}, 0]}
- keep: {path: [/etc/shadow, "/home/*/.ssh/*"], not: {exe: {prefix: /usr/}}}
- drop: {field: {comm: [cron, atd]}}
- default: drop
`)
	// 1; 1+1+2; 1+8+1; 48+2.
	if got, want := p.Size(), (rules.Size{Rules: 4, Patterns: 65}); got != want {
		t.Errorf("Size() = %+v, want %+v", got, want)
	}
}

func TestCheck(t *testing.T) {
	src := "- drop: {key: a}\n- drop: {key: [b, c]}\n- drop: {exe: \"/x/*\"}\n"
	p, err := rules.Parse([]byte(src), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		used rules.Size
		l    rules.Limits
		want string
	}{
		{rules.Size{}, rules.Limits{}, ""},
		{rules.Size{}, rules.Limits{Rules: 3, Patterns: 11}, ""},
		{rules.Size{}, rules.Limits{Rules: 2}, "r.yaml:3:3: rule 3 brings the rules to 3, more than the 2 allowed (what)"},
		{rules.Size{}, rules.Limits{Patterns: 10}, "r.yaml:3:3: rule 3 brings the patterns to 11, more than the 10 allowed (what)"},
		{rules.Size{Rules: 5, Patterns: 9}, rules.Limits{Patterns: 11}, "r.yaml:2:3: rule 2 brings the patterns to 12, more than the 11 allowed (what)"},
	} {
		err := p.CheckWithin(tc.used, tc.l, "what")
		var re *fileerr.Error
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckWithin(%+v, %+v) = %v", tc.used, tc.l, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want || !errors.As(err, &re)):
			t.Errorf("CheckWithin(%+v, %+v) = %v, want %s", tc.used, tc.l, err, tc.want)
		}
	}
}

func TestLongGlobRefused(t *testing.T) {
	_, err := rules.Parse([]byte("- drop: {path: \"/"+strings.Repeat("a*", 200)+"\"}\n"), "r.yaml")
	if err == nil || !strings.Contains(err.Error(), "r.yaml:1:16: path: glob of 401 bytes, longer than the 256 allowed") {
		t.Errorf("got %v", err)
	}
	if _, err := rules.Parse([]byte("- drop: {path: {prefix: \"/"+strings.Repeat("a", 4000)+"\"}}\n"), "r.yaml"); err != nil {
		t.Errorf("a long prefix: %v", err)
	}
}
