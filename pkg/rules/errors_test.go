package rules_test

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

func TestErrors(t *testing.T) {
	tests := []struct {
		src  string
		want string
	}{
		// YAML itself.
		{"- keep: [\n", `f.yaml:1: yaml: did not find expected node content`},
		{"- keep:\n  x\n y: 1\n", `f.yaml:2: yaml: could not find expected ':'`},
		{"- keep: {}\n\x01", `f.yaml:2:1: yaml: control characters are not allowed`},
		{"- keep: {}\n- drop: {exe: \xff}\n", `f.yaml:2:15: yaml: invalid leading UTF-8 octet`},
		{"- keep: {}\n---\n- drop: {}\n", `f.yaml:2:1: a rules file holds one YAML document`},
		// The list and its rules.
		{"keep: {}", `f.yaml:1:1: rules: want a list of rules (- keep: ..., - drop: ..., - default: ...)`},
		{"- keep", `f.yaml:1:3: a rule is a mapping with keep:, drop: or default:`},
		{"- strip: [CWD]", `f.yaml:1:3: a rule needs keep:, drop: or default:`},
		{"- keep: {}\n  drop: {}", `f.yaml:2:3: a rule has one of keep, drop or default, not both keep and drop`},
		{"- keep: {}\n  kep: {}", `f.yaml:2:3: unknown key "kep" in rule (want keep, drop, default or strip)`},
		{"- keep: {}\n  keep: {}", `f.yaml:2:3: duplicate key "keep"`},
		{"- default: drop\n- keep: {}", `f.yaml:1:3: default must be the last rule`},
		{"- default: maybe", `f.yaml:1:12: default: want keep or drop, got "maybe"`},
		{"- default: [keep]", `f.yaml:1:12: default: want keep or drop`},
		{"- drop: {}\n  strip: [CWD]", `f.yaml:2:3: strip: only a rule that keeps events can strip records`},
		{"- default: drop\n  strip: [CWD]", `f.yaml:2:3: strip: only a rule that keeps events can strip records`},
		{"- keep: {}\n  strip: [CWD, PROCTITEL]", `f.yaml:2:16: strip: unknown record type "PROCTITEL"`},
		{"- keep: {}\n  strip: []", `f.yaml:2:10: strip: empty list`},
		{"- keep: {}\n  strip: [1300, 1301, 1302, 1303, 1304, 1305, 1306, 1307, 1308, 1309, 1310, 1311, 1312, 1313, 1314, 1315]", `f.yaml:2:10: strip: at most 15 record types`},
		{"- keep: yes", `f.yaml:1:9: keep: want a mapping of conditions (type, syscall, arch, key, success, exit, uid, auid, euid, exe, path, field or not)`},
		{"- keep: {sycall: execve}", `f.yaml:1:10: unknown condition "sycall" (want type, syscall, arch, key, success, exit, uid, auid, euid, exe, path, field or not)`},
		{"- keep: {uid: 0, uid: 1}", `f.yaml:1:18: duplicate key "uid"`},
		{"- keep: {? [a]: 1}", `f.yaml:1:12: a key must be a name`},
		// Conditions.
		{"- keep: {type: SYSCAL}", `f.yaml:1:16: type: unknown record type "SYSCAL"`},
		{"- keep: {type: [SYSCALL, [EOE]]}", `f.yaml:1:26: type: want a record type name or a list of them`},
		{"- keep: {type: ~}", `f.yaml:1:16: type: want a record type name or a list of them`},
		{"- keep: {syscall: exceve}", `f.yaml:1:19: syscall: unknown syscall "exceve"`},
		{"- keep: {syscall: [execve, -1]}", `f.yaml:1:28: syscall: unknown syscall "-1"`},
		{"- keep: {syscall: {name: execve}}", `f.yaml:1:19: syscall: want a syscall name or number, or a list of them`},
		{"- keep: {arch: x86}", `f.yaml:1:16: arch: unknown architecture "x86" (want a name such as x86_64, i386 or aarch64)`},
		{"- keep: {success: maybe}", `f.yaml:1:19: success: want yes or no, got "maybe"`},
		{"- keep: {success: [yes]}", `f.yaml:1:19: success: want yes or no`},
		{"- keep: {exit: EACCES}", `f.yaml:1:16: exit: write -EACCES: a call that fails with EACCES exits with its negative`},
		{"- keep: {exit: -EFOO}", `f.yaml:1:16: exit: want a number, an error such as -EACCES, a range {min: N, max: N}, or a list of them, got "-EFOO"`},
		{"- keep: {exit: {min: 1, max: -1}}", `f.yaml:1:16: exit: min 1 is greater than max -1`},
		{"- keep: {exit: {}}", `f.yaml:1:16: exit: a range needs min:, max: or both`},
		{"- keep: {exit: {least: 1}}", `f.yaml:1:17: exit: unknown key "least" in range (want min or max)`},
		{"- keep: {uid: root}", `f.yaml:1:15: uid: want a number, unset, a range {min: N, max: N}, or a list of them, got "root"`},
		{"- keep: {auid: -1}", `f.yaml:1:16: auid: want a number, unset, a range {min: N, max: N}, or a list of them, got "-1"`},
		{"- keep: {euid: 4294967296}", `f.yaml:1:16: euid: want a number, unset, a range {min: N, max: N}, or a list of them, got "4294967296"`},
		{"- keep: {auid: {min: unset, max: 1000}}", `f.yaml:1:16: auid: min 4294967295 is greater than max 1000`},
		{"- keep: {exe: \"[a\"}", `f.yaml:1:15: exe: bad glob "[a": syntax error in pattern`},
		{"- keep: {path: {glob: \"a\\\\\"}}", `f.yaml:1:23: path: bad glob "a\\": syntax error in pattern`},
		{"- keep: {key: {prefix: a, exact: b}}", `f.yaml:1:15: key: want one of exact:, prefix: or glob:`},
		{"- keep: {key: {start: a}}", `f.yaml:1:16: key: unknown key "start" (want exact, prefix or glob)`},
		{"- keep: {exe: {prefix: ~}}", `f.yaml:1:24: exe prefix: want a string`},
		{"- keep: {exe: ~}", `f.yaml:1:15: exe: want a string, {prefix: S}, {exact: S}, {glob: S}, or a list of them`},
		{"- keep: {path: []}", `f.yaml:1:16: path: empty list`},
		{"- keep: {field: tty}", `f.yaml:1:17: field: want a mapping of field names to values`},
		{"- keep: {field: {\"a b\": 1}}", `f.yaml:1:18: field: bad field name "a b" (no spaces, '=' or '"')`},
		{"- keep: {field: {tty: {a: b}}}", `f.yaml:1:23: field tty: want a value or a list of values`},
		{"- keep: {not: {}}", `f.yaml:1:15: not: needs at least one condition`},
		{"- keep: {not: {not: {sycall: 1}}}", `f.yaml:1:22: unknown condition "sycall" (want type, syscall, arch, key, success, exit, uid, auid, euid, exe, path, field or not)`},
		// What the language leaves out.
		{"- keep: &a {uid: 0}\n- drop: *a", `f.yaml:2:9: aliases are not supported in rules`},
		{"- keep: {uid: !secret 0}", `f.yaml:1:15: unsupported tag !secret`},
		{"- keep:\n    <<: {uid: 0}", `f.yaml:2:5: merge keys are not supported in rules`},
	}
	for _, tt := range tests {
		_, err := rules.Parse([]byte(tt.src), "f.yaml")
		if err == nil {
			t.Errorf("%q: no error, want %s", tt.src, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("%q:\n got %s\nwant %s", tt.src, got, tt.want)
		}
		var e *fileerr.Error
		if !errors.As(err, &e) || e.File != "f.yaml" {
			t.Errorf("%q: error %T is not a *fileerr.Error for f.yaml", tt.src, err)
		}
	}
}

func TestSeveralErrors(t *testing.T) {
	src := `
- keep:
    syscall: [execve, exceve]
    exe: "[a"
  strip: [PROCTITEL]
- drop:
    type: SYSCAL
- default: keep
`
	_, err := rules.Parse([]byte(src), "c.yaml")
	want := strings.Join([]string{
		`c.yaml:3:23: syscall: unknown syscall "exceve"`,
		`c.yaml:4:10: exe: bad glob "[a": syntax error in pattern`,
		`c.yaml:5:11: strip: unknown record type "PROCTITEL"`,
		`c.yaml:7:11: type: unknown record type "SYSCAL"`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	var e *fileerr.Error
	if !errors.As(err, &e) || e.Line != 3 || e.Col != 23 {
		t.Errorf("errors.As gives %+v, want the first error", e)
	}
}

// TestFromNode checks that errors in rules embedded in a container file
// carry that file's lines.
func TestFromNode(t *testing.T) {
	src := `id: 42
name: web
rules:
  - keep:
      syscall: execve
  - drop:
      uid: nobody
`
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	rulesNode := doc.Content[0].Content[5]
	_, err := rules.FromNode(rulesNode, "containers/web.yaml")
	want := `containers/web.yaml:7:12: uid: want a number, unset, a range {min: N, max: N}, or a list of them, got "nobody"`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	for _, n := range []*yaml.Node{nil, {Kind: yaml.ScalarNode, Tag: "!!null"}, &doc} {
		if _, err := rules.FromNode(n, "x.yaml"); n != &doc && err != nil {
			t.Errorf("FromNode(%v): %v", n, err)
		}
	}
	p, err := rules.FromNode(&yaml.Node{Kind: yaml.DocumentNode}, "x.yaml")
	if err != nil || !p.Default().Keep {
		t.Errorf("empty document: %v %v", p.Default(), err)
	}
}
