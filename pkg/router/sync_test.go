package router_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// Sync returns once every event that closed before it is copied: with the
// stock-kernel delay, not before the delay, and with no delay at once (no
// fixed wait). Events submitted after it are not waited for.
func TestSyncBarrier(t *testing.T) {
	for _, delay := range []time.Duration{0, 300 * time.Millisecond} {
		attr := unsettled{}
		c := container(t, "name: a\ncgroup: /cg/a\ndeliver: {file: /x/a}\n")
		tree, err := registry.Build([]*registry.Container{c})
		if err != nil {
			t.Fatal(err)
		}
		r := router.New(router.Options{EventTimeout: time.Hour, Delay: delay, Attribute: attr})
		s := &sink{}
		r.Set(tree, map[string]*router.Container{"a": router.NewContainer(c, s)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		const n = 50
		for i := 1; i <= n; i++ {
			ts := fmt.Sprintf("audit(1700000000.123:%d): ", i)
			r.Submit(record.TypeSyscall, []byte(fmt.Sprintf("%sarch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=%d auid=0", ts, 100+i)))
			r.Submit(record.TypeEOE, []byte(ts))
		}
		// An event still open (no EOE, a timeout of an hour) is not waited for.
		r.Submit(record.TypeSyscall, []byte("audit(1700000000.123:999): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=7 auid=0"))
		start := time.Now()
		// Bounds far above what load delays, far below the hour a wait for
		// the open event would take.
		sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
		if err := r.Sync(sctx); err != nil {
			t.Fatalf("delay %v: Sync: %v", delay, err)
		}
		scancel()
		took := time.Since(start)
		s.mu.Lock()
		got := len(s.lines)
		s.mu.Unlock()
		if got != 2*n {
			t.Errorf("delay %v: %d lines copied when Sync returned, want %d", delay, got, 2*n)
		}
		if took < delay/2 || took > delay+30*time.Second {
			t.Errorf("delay %v: Sync took %v", delay, took)
		}
		cancel()
		<-done
		// After Run, Sync returns at once.
		if err := r.Sync(context.Background()); err != nil {
			t.Errorf("Sync after Run: %v", err)
		}
	}
}

// Sync ends with its context when Run is not running.
func TestSyncContext(t *testing.T) {
	r := router.New(router.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Sync(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sync with no Run: %v, want the context's deadline", err)
	}
}

// unsettled attributes every pid to the first container and is never
// settled: every event waits for the delay.
type unsettled struct{}

func (unsettled) Attribute(pid, ppid uint32, at int64, dirs []string) int { return 0 }
func (unsettled) Settled(int64) bool                                      { return false }
