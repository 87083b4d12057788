package record_test

import (
	"slices"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

func TestParseContainerOp(t *testing.T) {
	for _, tc := range []struct {
		text    string
		want    record.ContainerOp
		wantErr bool
	}{
		{"op=set opid=123 contid=42,^7 old-contid=-1 res=1", record.ContainerOp{Op: "set", OPID: 123, ContID: []uint64{42, 7}, Result: true}, false},
		{"op=set opid=9 contid=5 old-contid=5 res=0", record.ContainerOp{Op: "set", OPID: 9, ContID: []uint64{5}, OldContID: []uint64{5}}, false},
		{"op=drop opid=77 contid=-1 old-contid=42,^7,^1", record.ContainerOp{Op: "drop", OPID: 77, OldContID: []uint64{42, 7, 1}, Result: true}, false},
		{"op=move opid=1 contid=1 old-contid=-1", record.ContainerOp{}, true},
		{"op=set opid=x contid=1 old-contid=-1", record.ContainerOp{}, true},
		{"op=set opid=1 contid=1,2 old-contid=-1", record.ContainerOp{}, true},
		{"op=set opid=1 old-contid=-1", record.ContainerOp{}, true},
	} {
		var r record.Record
		if err := record.Parse(&r, 1020, []byte("audit(1.001:2): "+tc.text)); err != nil {
			t.Fatal(err)
		}
		got, err := record.ParseContainerOp(&r, nil)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: error %v, want error %v", tc.text, err, tc.wantErr)
			continue
		}
		if err == nil && (got.Op != tc.want.Op || got.OPID != tc.want.OPID || got.Result != tc.want.Result ||
			!slices.Equal(got.ContID, tc.want.ContID) || !slices.Equal(got.OldContID, tc.want.OldContID)) {
			t.Errorf("%q: got %+v, want %+v", tc.text, got, tc.want)
		}
	}
}
