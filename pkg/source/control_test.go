package source_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
)

// TestControlConcurrent: one Control used by several goroutines at once,
// as the daemon's poller, reloads, registrations and status requests use
// it, on the real kernel. Each call gets its own reply: no "unexpected
// sequence number", no reply taken by another call, no data race (-race).
func TestControlConcurrent(t *testing.T) {
	ctl := testkernel.Take(t)
	const workers, rounds = 6, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*4)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				wire, err := auditrule.Build(fmt.Sprintf("-a always,exit -F arch=b64 -S uname -F uid=%d -k ctltest", 60000+w*rounds+i))
				if err != nil {
					errs <- err
					return
				}
				if err := ctl.AddRule(wire); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
				}
				if _, err := ctl.Status(); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
				}
				if _, err := ctl.Rules(); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
				}
				if err := ctl.DeleteRule(wire); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 5 {
		t.Errorf("... %d errors in all", n)
	}
}
