package source_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// Records that wait on the socket are read many per system call
// (recvmmsg) and handed out one by one, in the kernel's order, none lost;
// messages another socket slipped in between are dropped and counted,
// not returned. Run for a batch of one (recvfrom) and of 64.
func TestIntegrationKernelBatchKeepsOrder(t *testing.T) {
	for _, size := range []int{1, 7, 64} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { batchKeepsOrder(t, size) })
	}
}

func batchKeepsOrder(t *testing.T, size int) {
	ctl := testkernel.Take(t)
	k, err := source.OpenKernel()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := k.SetBatch(size); err != nil {
		t.Fatal(err)
	}
	if err := k.Register(); err != nil {
		t.Fatal(err)
	}
	defer k.Unregister()
	if err := ctl.SetEnabled(1); err != nil {
		t.Fatal(err)
	}
	const n = 300
	foreign := 0
	for i := range n {
		if err := ctl.UserMessage(fmt.Sprintf("op=batch-test i=%d pid=%d", i, os.Getpid())); err != nil {
			t.Fatal(err)
		}
		if i%50 == 25 && os.Geteuid() == 0 {
			source.SendAudit(t, k.Port(t), 1100, fmt.Sprintf("audit(1.000:%d): msg='op=batch-test i=forged'", i))
			foreign++
		}
	}
	want := 0
	for want < n {
		typ, data, err := k.Receive(nil)
		if err != nil {
			t.Fatalf("after %d of %d records: %v", want, n, err)
		}
		if bytes.Contains(data, []byte("i=forged")) {
			t.Fatalf("a foreign message was returned as a record: type %d %q", typ, data)
		}
		if !bytes.Contains(data, []byte("op=batch-test")) {
			continue // another record of the kernel's (the rule or status change)
		}
		if mark := fmt.Sprintf("op=batch-test i=%d ", want); !bytes.Contains(data, []byte(mark)) {
			t.Fatalf("record %d: got %q, want one with %q", want, data, mark)
		}
		want++
	}
	if got := k.Foreign(); got != uint64(foreign) {
		t.Errorf("Foreign() = %d, want %d", got, foreign)
	}
	if err := k.SetBatch(0); err == nil {
		t.Error("SetBatch(0) was accepted")
	}
}
