package rules_test

import (
	"encoding/hex"
	"errors"
	"path"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// FuzzParse feeds Parse arbitrary files: it must not panic, errors must be
// *Error values naming the file, and what compiles must match events.
// Seeds: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(benchRules))
	f.Add([]byte("- keep: {exe: \"[a\"}\n- default: drop\n"))
	evs := events(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := rules.Parse(src, "fuzz.yaml")
		if err != nil {
			for _, e := range unjoin(err) {
				var re *fileerr.Error
				if !errors.As(e, &re) || re.File != "fuzz.yaml" || !strings.HasPrefix(e.Error(), "fuzz.yaml:") {
					t.Fatalf("error %T %q is not a *fileerr.Error for fuzz.yaml", e, e)
				}
			}
			return
		}
		for _, ev := range evs {
			p.Match(ev)
		}
	})
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// FuzzMatch matches arbitrary records. It checks that a field condition
// finds the value record.Field finds, that a glob on exe agrees with
// path.Match, and that nothing panics. Seeds: testdata/fuzz/FuzzMatch.
func FuzzMatch(f *testing.F) {
	f.Add(uint16(1300), execSyscall[len("audit(1700000000.123:4242): "):], "key", "/usr/*/t*e", "/usr/bin/true")
	f.Add(uint16(1300), `a="x y key=1" key=2 uid=0`, "key", "[a-c]?*", "b/x")
	f.Add(uint16(1302), `item=0 name=2F6F70742F6D7920746F6F6C`, "name", `\*[^/]`, "*x")
	f.Add(uint16(1112), `pid=1 msg='op=x exe="/a b" res=1'`, "exe", "*", "")
	all := mustParse(f, benchRules)
	f.Fuzz(func(t *testing.T, typ uint16, text, name, pattern, subject string) {
		ev := &record.Event{Records: make([]record.Record, 3)}
		for i, ty := range []uint16{typ, 1302, 1320} {
			if err := record.Parse(&ev.Records[i], ty, []byte("audit(1.002:3): "+text)); err != nil {
				t.Skip()
			}
		}
		all.Match(ev)

		if v, ok := record.Field(ev.Records[0].Text, name); ok && fieldName(name) && utf8.Valid(record.Unquote(v)) {
			want := string(record.Unquote(v))
			p := compile(t, "{field: {"+strconv.Quote(name)+": "+strconv.Quote(want)+"}}")
			if p != nil && !p.Match(ev).Keep {
				t.Errorf("field %s: record.Field finds %q, the condition does not", name, v)
			}
		}
		checkMain(t, ev)
		checkGlob(t, pattern, subject)
	})
}

// checkMain checks that the conditions on the main record's fields see the
// values record.Field finds there.
func checkMain(t *testing.T, ev *record.Event) {
	text := ev.Records[0].Text
	for _, id := range []string{"uid", "auid", "euid"} {
		v, ok := record.Field(text, id)
		if n, err := strconv.ParseUint(string(v), 10, 32); ok && err == nil {
			if p := compile(t, "{"+id+": "+strconv.FormatUint(n, 10)+"}"); p == nil || !p.Match(ev).Keep {
				t.Errorf("%s: record.Field finds %q, the condition does not", id, v)
			}
		}
	}
	for _, name := range []string{"exe", "key"} {
		v, ok := record.Field(text, name)
		if !ok || len(v) < 3 || v[0] != '"' || v[len(v)-1] != '"' {
			continue
		}
		s := string(v[1 : len(v)-1])
		if !utf8.ValidString(s) || strings.ContainsRune(s, 1) {
			continue
		}
		if p := compile(t, "{"+name+": {exact: "+strconv.Quote(s)+"}}"); p == nil || !p.Match(ev).Keep {
			t.Errorf("%s: record.Field finds %q, the condition does not", name, v)
		}
	}
}

// checkGlob matches subject, as a hex exe= and when it can be as a quoted
// one, against pattern and compares with path.Match.
func checkGlob(t *testing.T, pattern, subject string) {
	if subject == "" || !utf8.ValidString(pattern) {
		return
	}
	p := compile(t, "{exe: {glob: "+strconv.Quote(pattern)+"}}")
	// A glob longer than MaxGlob is refused, unless it has no special
	// character and is an exact value.
	if len(pattern) > rules.MaxGlob && strings.ContainsAny(pattern, `*?[\`) {
		if p != nil {
			t.Fatalf("glob of %d bytes accepted, over MaxGlob", len(pattern))
		}
		return
	}
	want, err := path.Match(pattern, subject)
	if (err != nil) != (p == nil) {
		t.Fatalf("glob %q: path.Match error %v, Parse error %v", pattern, err, p == nil)
	}
	if p == nil {
		return
	}
	values := []string{strings.ToUpper(hex.EncodeToString([]byte(subject)))}
	if !strings.ContainsAny(subject, "\" ") && utf8.ValidString(subject) {
		values = append(values, `"`+subject+`"`)
	}
	for _, v := range values {
		ev := &record.Event{Records: make([]record.Record, 1)}
		if err := record.Parse(&ev.Records[0], 1300, []byte("audit(1.002:3): arch=c000003e exe="+v)); err != nil {
			t.Fatal(err)
		}
		if got := p.Match(ev).Keep; got != want {
			t.Errorf("glob %q on exe=%s (%q): got %v, path.Match says %v", pattern, v, subject, got, want)
		}
	}
}

func fieldName(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r == '=' || r == '"' || r >= 0x7f
	})
}

// compile builds "- keep: CONDS" and "- default: drop"; strings in conds
// are quoted with strconv.Quote, whose escapes YAML shares. It returns nil
// when Parse refuses the rules.
func compile(t *testing.T, conds string) *rules.Program {
	p, err := rules.Parse([]byte("- keep: "+conds+"\n- default: drop\n"), "fuzz.yaml")
	if err != nil {
		return nil
	}
	return p
}

// TestGlobAgreesWithPathMatch compares globs of every shape with path.Match
// on names around them.
func TestGlobAgreesWithPathMatch(t *testing.T) {
	patterns := []string{
		"/usr/*/*", "/usr/bin/*", "cron-*", "*", "*/*", "/*", "*/", "/usr/*/t?ue", "/a/*b*/c",
		"/usr/*", "**", "/**/x", "a*b*c", "*.so.?", "/lib*/ld-*", "/[a-z]*/*", `/usr/\*`, "/h?me/*/.ssh/*",
		"/ü/*", "?", "/?/", "[^/]", "[/]x", "a/b", "", "/", "//", "*x*/", "/opt/my?tool/*/run",
	}
	names := []string{
		"/usr/bin/true", "/usr/bin/", "/usr/", "/usr", "usr", "/usr/lib/x/ssh", "cron-daily", "cron-", "cron-a/b",
		"a", "", "/", "//", "/a/xbx/c", "/a/b/c", "abc", "aXbYc", "libc.so.6", "/lib64/ld-linux.so", "/usr/*",
		"/home/al/.ssh/keys", "/ü/a", "/u/", "x", "/x", "a/b", "/opt/my tool/bin/run", "ax/", "/bin/x",
	}
	for _, pat := range patterns {
		for _, name := range names {
			checkGlob(t, pat, name)
		}
	}
}
