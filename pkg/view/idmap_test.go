package view_test

import (
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/view"
)

func TestParseIDMap(t *testing.T) {
	// As the kernel prints a rootless container's uid_map ("%10u %10u %10u").
	m, err := view.ParseIDMap([]byte("         0     100000      65536\n     65536       1000          1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ host, want uint32 }{
		{100000, 0}, {100001, 1}, {165535, 65535}, {165536, view.Overflow},
		{99999, view.Overflow}, {1000, 65536}, {1001, view.Overflow}, {0, view.Overflow},
		{view.Unset, view.Unset},
	} {
		if got := m.Map(c.host); got != c.want {
			t.Errorf("Map(%d) = %d, want %d", c.host, got, c.want)
		}
	}
	if m.Identity() {
		t.Error("a parsed map reports Identity")
	}
}

func TestIDMapIdentityAndEmpty(t *testing.T) {
	var id view.IDMap
	if !id.Identity() || id.Map(1234) != 1234 || id.Map(0) != 0 {
		t.Errorf("zero IDMap is not the identity: Map(1234) = %d", id.Map(1234))
	}
	host, err := view.ParseIDMap([]byte("         0          0 4294967295\n"))
	if err != nil || host.Map(4294967294) != 4294967294 || host.Map(7) != 7 {
		t.Errorf("init_user_ns map: %v, Map(7) = %d", err, host.Map(7))
	}
	empty, err := view.ParseIDMap(nil)
	if err != nil || empty.Map(0) != view.Overflow {
		t.Errorf("a namespace with no map written: %v, Map(0) = %d, want %d", err, empty.Map(0), view.Overflow)
	}
}

func TestIDMapMany(t *testing.T) {
	var b strings.Builder
	for i := range 340 {
		b.WriteString(strings.Join([]string{itoa(i * 10), itoa(1_000_000 - i*10), "5"}, " ") + "\n")
	}
	m, err := view.ParseIDMap([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 340 {
		out := uint32(1_000_000 - i*10)
		if got := m.Map(out + 4); got != uint32(i*10+4) {
			t.Fatalf("Map(%d) = %d, want %d", out+4, got, i*10+4)
		}
		if got := m.Map(out + 5); got != view.Overflow {
			t.Fatalf("Map(%d) = %d, want overflow", out+5, got)
		}
	}
	if _, err := view.ParseIDMap([]byte(b.String() + "5000 5000 1\n")); err == nil {
		t.Error("341 lines accepted")
	}
}

func TestParseIDMapErrors(t *testing.T) {
	for _, in := range []string{
		"0 100000",
		"0 100000 65536 4",
		"0 x 1",
		"0 100000 0",
		"0 4294967295 2",
		"4294967295 0 2",
		"0 100 10\n20 105 10", // outside ranges overlap
		"0 100 10\n5 200 10",  // inside ranges overlap
		"-1 0 1",
		"0 0 4294967296",
	} {
		if _, err := view.ParseIDMap([]byte(in)); err == nil {
			t.Errorf("ParseIDMap(%q) accepted", in)
		} else if !strings.Contains(err.Error(), "id map") {
			t.Errorf("ParseIDMap(%q): error %q does not say what", in, err)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
