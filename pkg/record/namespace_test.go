package record_test

import (
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

func TestParseNamespace(t *testing.T) {
	for _, tc := range []struct {
		text    string
		want    record.Namespace
		wantErr bool
	}{
		{"op=create type=net ino=4026532072", record.Namespace{Op: "create", Type: "net", Ino: 4026532072}, false},
		{"op=create type=user ino=4026532072 parent_ino=4026531837", record.Namespace{Op: "create", Type: "user", Ino: 4026532072, ParentIno: 4026531837}, false},
		{"op=change type=net old_ino=4026531840 new_ino=4026532072", record.Namespace{Op: "change", Type: "net", OldIno: 4026531840, NewIno: 4026532072}, false},
		{"op=destroy type=pid_for_children ino=5", record.Namespace{Op: "destroy", Type: "pid_for_children", Ino: 5}, false},
		{"op=create type=net", record.Namespace{}, true},
		{"op=change type=net old_ino=1", record.Namespace{}, true},
		{"op=destroy type=net ino=x", record.Namespace{}, true},
		{"op=rename type=net ino=1", record.Namespace{}, true},
		{"op=create ino=1", record.Namespace{}, true},
	} {
		var r record.Record
		if err := record.Parse(&r, record.TypeNamespace, []byte("audit(1.001:2): "+tc.text)); err != nil {
			t.Fatal(err)
		}
		got, err := record.ParseNamespace(&r)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("%q: got %+v, %v; want %+v (error %v)", tc.text, got, err, tc.want, tc.wantErr)
		}
	}
}
