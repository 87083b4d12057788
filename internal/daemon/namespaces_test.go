package daemon

import (
	"testing"
)

func TestNamespaceBook(t *testing.T) {
	var b namespaceBook
	b.note(1020, []byte("audit(1.001:2): op=set opid=412 contid=7 old-contid=-1 ns_dev=00:04 ns_net=4026532008 ns_pid=4026531836 pid=300 auid=-1 res=1"))
	b.note(1020, []byte("audit(1.001:3): op=set opid=413 contid=8 old-contid=-1 ns_net=1 res=0"))
	b.note(1300, []byte("audit(1.001:4): contid=9 ns_net=2"))
	got := b.of(7)
	if got["ns_net"] != "4026532008" || got["ns_dev"] != "00:04" || got["ns_pid"] != "4026531836" || len(got) != 3 {
		t.Errorf("namespaces of 7: %v", got)
	}
	if b.of(8) != nil || b.of(9) != nil {
		t.Errorf("kept a failed set or another record type: %v %v", b.of(8), b.of(9))
	}
}
