package procs

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// fanBytes builds fanotify_event_metadata records as read(2) returns them.
func fanBytes(evs ...fanEvent) []byte {
	var b []byte
	for _, ev := range evs {
		r := make([]byte, fanMetadataLen)
		ne := binary.NativeEndian
		ne.PutUint32(r[0:], fanMetadataLen)
		r[4] = fanMetadataVersion
		ne.PutUint16(r[6:], fanMetadataLen)
		ne.PutUint64(r[8:], ev.Mask)
		ne.PutUint32(r[16:], uint32(ev.FD))
		ne.PutUint32(r[20:], uint32(ev.PID))
		b = append(b, r...)
	}
	return b
}

func TestParseFanEvents(t *testing.T) {
	want := []fanEvent{{Mask: 2, FD: 7, PID: 1234}, {Mask: 0x4000, FD: -1, PID: 0}}
	var got []fanEvent
	if err := parseFanEvents(fanBytes(want...), func(ev fanEvent) { got = append(got, ev) }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	bad := fanBytes(want[0])
	bad[4] = 2
	short := fanBytes(want[0])
	binary.NativeEndian.PutUint32(short[0:], 8)
	long := fanBytes(want[0])
	binary.NativeEndian.PutUint32(long[0:], 100)
	for name, b := range map[string][]byte{"version": bad, "short length": short, "long length": long, "truncated": fanBytes(want[0])[:20]} {
		if err := parseFanEvents(b, func(fanEvent) {}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestStatExiting(t *testing.T) {
	for in, want := range map[string]bool{
		"42 (sh) S 1 42 42 0 -1 4194560 100 0 0 0":        false,
		"42 (a) b) (c) R 1 42 42 0 -1 4194304 1 0":        false,
		"42 (sh) Z 1 42 42 0 -1 4227084 100 0 0 0":        true,
		"42 (sh) R 1 42 42 0 -1 4194308 100 0 0 0":        true, // PF_EXITING
		"42 (sh) X 1 42 42 0 -1 0 0":                      true,
		"42 (sh) S 1":                                     true,
		"garbage":                                         true,
		"42 (true) S 1 42 42 0 -1 notanumber 100 0 0 0 0": true,
	} {
		if got := statExiting([]byte(in)); got != want {
			t.Errorf("statExiting(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestWithPlaceProcFormat(t *testing.T) {
	c, _ := parseProcCgroup([]byte("8:pids:/\n2:cpu,cpuacct:/x\n0::/\n"))
	got := c.withPlace(CgroupDir{Hierarchy: 8, Controllers: "pids", Path: "/t"})
	if string(got.procFormat()) != "8:pids:/t\n2:cpu,cpuacct:/x\n0::/\n" {
		t.Errorf("v1 move: %q", got.procFormat())
	}
	if c.V1[1].Path != "/" {
		t.Error("withPlace modified its receiver's V1")
	}
	got = c.withPlace(CgroupDir{V2: true, Path: "/t"})
	if string(got.procFormat()) != "8:pids:/\n2:cpu,cpuacct:/x\n0::/t\n" {
		t.Errorf("v2 move: %q", got.procFormat())
	}
	got = Cgroups{}.withPlace(CgroupDir{Hierarchy: 3, Controllers: "cpuset", Path: "/t"})
	if string(got.procFormat()) != "3:cpuset:/t\n" {
		t.Errorf("move of an unknown process: %q", got.procFormat())
	}
	again, err := parseProcCgroup(c.procFormat())
	if err != nil || !reflect.DeepEqual(again, c) {
		t.Errorf("procFormat does not parse back: %+v, %v", again, err)
	}
}

func FuzzParseFanEvents(f *testing.F) {
	f.Add(fanBytes(fanEvent{Mask: 2, FD: 7, PID: 1234}))
	f.Add(fanBytes(fanEvent{Mask: 2, FD: 7, PID: 1}, fanEvent{Mask: 0x4000, FD: -1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseFanEvents(b, func(fanEvent) {})
	})
}
