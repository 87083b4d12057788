package procs

import (
	"slices"
	"strings"
	"testing"
)

func TestParseNSpid(t *testing.T) {
	status := func(name, nspid string) string {
		return "Name:\t" + name + "\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\nPid:\t42\nNStgid:\t42\t7\nNSpid:" + nspid + "\nNSpgid:\t42\t7\n"
	}
	for _, tc := range []struct {
		status string
		want   []uint32
		err    string
	}{
		{status: status("sh", "\t42\t7"), want: []uint32{42, 7}},
		{status: status("sh", "\t42"), want: []uint32{42}},
		{status: status("sh", "\t42\t9\t1"), want: []uint32{42, 9, 1}},
		// A process names itself: the kernel escapes a newline in Name as
		// \n, and the first line is skipped whatever it holds.
		{status: status(`evil\nNSpid:\t666\t1`, "\t42\t7"), want: []uint32{42, 7}},
		{status: "Name:\tNSpid:\t666\t1\nNSpid:\t42\t3\n", want: []uint32{42, 3}},
		{status: "NSpid:\t42\t1\n", err: "no NSpid line"},
		{status: "Name:\tx", err: "no NSpid line"},
		{status: status("sh", "\t43\t7"), err: "begins with 43, not the process's pid 42"},
		{status: status("sh", "\t42\t0"), err: `"0" is not a pid`},
		{status: status("sh", "\t42\tx"), err: `"x" is not a pid`},
		{status: status("sh", "\t42\t-1"), err: `"-1" is not a pid`},
		{status: status("sh", "\t42\t4294967296"), err: "is not a pid"},
		{status: status("sh", ""), err: "NSpid is empty"},
		{status: status("sh", "\t42"+strings.Repeat("\t5", 33)), err: "more than 33 levels"},
	} {
		got, err := parseNSpid([]byte(tc.status), 42, []uint32{99})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, %v; want error %q", tc.status, got, err, tc.err)
			}
			if !slices.Equal(got, []uint32{99}) {
				t.Errorf("%q: out changed on error: %v", tc.status, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got[1:], tc.want) || got[0] != 99 {
			t.Errorf("%q: got %v, %v; want %v", tc.status, got, err, tc.want)
		}
	}
}
