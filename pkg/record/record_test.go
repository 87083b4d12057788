package record_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

func TestParse(t *testing.T) {
	var r record.Record
	err := record.Parse(&r, 1300, []byte("audit(1700000000.042:77): arch=c000003e key=\"a b\" x=1\x00\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Sec != 1700000000 || r.Msec != 42 || r.Serial != 77 || string(r.Text) != `arch=c000003e key="a b" x=1` {
		t.Errorf("parsed %+v", r)
	}
	for name, want := range map[string]string{"arch": "c000003e", "key": `"a b"`, "x": "1"} {
		if v, ok := r.Field(name); !ok || string(v) != want {
			t.Errorf("Field(%s) = %q, %v; want %q", name, v, ok, want)
		}
	}
	if _, ok := r.Field("b\""); ok {
		t.Error("found a field inside a quoted value")
	}
	c := r.Clone()
	if string(c.Text) != string(r.Text) {
		t.Error("Clone changed the text")
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   `malformed audit record header at byte 0: does not start with "audit("`,
		"audit(x.1:2): a":                    "malformed audit record header at byte 6: bad seconds",
		"audit(1:2): a":                      `malformed audit record header at byte 7: missing "." after seconds`,
		"audit(1.1000:2): a":                 "malformed audit record header at byte 8: bad milliseconds",
		"audit(1.1 2): a":                    `malformed audit record header at byte 9: missing ":" before serial`,
		"audit(1.1:): a":                     "malformed audit record header at byte 10: bad serial",
		"audit(1.1:99999999999999999999): a": "malformed audit record header at byte 10: bad serial",
		"audit(1.1:2) a":                     `malformed audit record header at byte 11: missing "):" after serial`,
	} {
		var r record.Record
		err := record.Parse(&r, 1300, []byte(in))
		if err == nil || err.Error() != want || !errors.Is(err, record.ErrHeader) {
			t.Errorf("Parse(%q) = %v, want %s", in, err, want)
		}
		if string(r.Data) != in || r.Type != 1300 {
			t.Errorf("Parse(%q) lost the record: %+v", in, r)
		}
	}
}

func TestChain(t *testing.T) {
	for in, want := range map[string][]uint64{
		"42":                      {42},
		"42,^7,^1":                {42, 7, 1},
		"-1":                      nil,
		"0":                       {0},
		"18446744073709551614,^3": {18446744073709551614, 3},
	} {
		got, err := record.ParseChain(nil, []byte(in))
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseChain(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back := string(record.AppendChain(nil, got)); back != in {
			t.Errorf("AppendChain(%v) = %q, want %q", got, back, in)
		}
	}
	for _, bad := range []string{"", ",", "42,", "42,7", "^42", "42,^", "42,^-1", "18446744073709551615", "4x", "42,^7,^18446744073709551616", "-2"} {
		if _, err := record.ParseChain(nil, []byte(bad)); !errors.Is(err, record.ErrChain) {
			t.Errorf("ParseChain(%q) = %v, want a chain error", bad, err)
		}
	}
}

func TestTypeNames(t *testing.T) {
	for typ, name := range map[uint16]string{1300: "SYSCALL", 1320: "EOE", 1020: "UNKNOWN[1020]", 1340: "UNKNOWN[1340]", 1341: "UNKNOWN[1341]", 1200: "DAEMON_START", 9999: "UNKNOWN[9999]"} {
		if got := record.TypeName(typ); got != name {
			t.Errorf("TypeName(%d) = %q, want %q", typ, got, name)
		}
		if back, ok := record.TypeByName(name); !ok || back != typ {
			t.Errorf("TypeByName(%q) = %d, %v", name, back, ok)
		}
	}
}

// TestTypeByPatchName: the names of the patches' types are still taken.
func TestTypeByPatchName(t *testing.T) {
	for name, typ := range map[string]uint16{"CONTAINER_OP": 1020, "CONTAINER_ID": 1340, "NAMESPACE": 1341} {
		if back, ok := record.TypeByName(name); !ok || back != typ {
			t.Errorf("TypeByName(%q) = %d, %v, want %d", name, back, ok, typ)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	data := []byte(`audit(1700000000.042:77): record=1300 contid=42,^7,^1`)
	var r record.Record
	buf := make([]uint64, 0, 8)
	n := testing.AllocsPerRun(100, func() {
		record.Parse(&r, 1340, data)
		r.Chain(buf[:0])
		record.TypeName(r.Type)
	})
	if n != 0 {
		t.Errorf("%v allocations per record, want 0", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("audit(1700000000.042:77): arch=c000003e key=\"a b\""))
	f.Add([]byte("audit(1.1:2): "))
	f.Add([]byte("audit(1.1:2): record=1300 contid=42,^7,^1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r record.Record
		err := record.Parse(&r, 1300, data)
		if err != nil {
			return
		}
		r.Field("key")
		r.Chain(nil)
		if len(r.Text) > len(r.Data) {
			t.Fatalf("text longer than data")
		}
	})
}

func FuzzChain(f *testing.F) {
	for _, s := range []string{"42", "42,^7,^1", "-1", "", "42,^", "18446744073709551615"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := record.ParseChain(nil, b)
		if err != nil {
			return
		}
		back := record.AppendChain(nil, ids)
		again, err := record.ParseChain(nil, back)
		if err != nil || !slices.Equal(ids, again) {
			t.Fatalf("%q -> %v -> %q -> %v, %v", b, ids, back, again, err)
		}
	})
}

func BenchmarkParseChain(b *testing.B) {
	data := []byte(`audit(1700000000.042:77): record=1300 contid=42,^7,^1`)
	var r record.Record
	buf := make([]uint64, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		record.Parse(&r, 1340, data)
		r.Chain(buf[:0])
	}
}

func TestSplitChains(t *testing.T) {
	var got []string
	for rest := []byte("600,^1,601,^1,7"); len(rest) > 0; {
		var one []byte
		one, rest = record.SplitChains(rest)
		got = append(got, string(one))
	}
	if strings.Join(got, " ") != "600,^1 601,^1 7" {
		t.Errorf("got %q", got)
	}
}

// BenchmarkField finds pid= in a SYSCALL record, after a dozen fields.
func BenchmarkField(b *testing.B) {
	text := []byte(`arch=c000003e syscall=59 success=yes exit=0 a0=55d5c2b0 a1=55d5c2c0 a2=55d5c2d0 a3=0 items=2 ppid=1000 pid=1001 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="ls" exe="/usr/bin/ls" key="exec"`)
	for b.Loop() {
		if v, ok := record.Field(text, "pid"); !ok || string(v) != "1001" {
			b.Fatalf("Field = %q, %v", v, ok)
		}
	}
}
