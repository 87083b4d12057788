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
		{"op=create nstype=net inode=4026532072", record.Namespace{Op: "create", Type: "net", Inode: 4026532072}, false},
		{"op=create nstype=user inode=4026532072 parent_inode=4026531837", record.Namespace{Op: "create", Type: "user", Inode: 4026532072, ParentInode: 4026531837}, false},
		{"op=change nstype=net old_inode=4026531840 new_inode=4026532072", record.Namespace{Op: "change", Type: "net", OldInode: 4026531840, NewInode: 4026532072}, false},
		{"op=destroy nstype=pid_for_children inode=5", record.Namespace{Op: "destroy", Type: "pid_for_children", Inode: 5}, false},
		{"op=create nstype=net", record.Namespace{}, true},
		{"op=change nstype=net old_inode=1", record.Namespace{}, true},
		{"op=destroy nstype=net inode=x", record.Namespace{}, true},
		{"op=rename nstype=net inode=1", record.Namespace{}, true},
		{"op=create inode=1", record.Namespace{}, true},
		// v1's names are refused, not misread
		{"op=create type=net ino=4026532072", record.Namespace{}, true},
		{"op=destroy nstype=net ino=5", record.Namespace{}, true},
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
