package leaktest

import (
	"testing"
	"time"
)

const pkg = "github.com/auditd-ns/auditd-ns/internal/leaktest."

//go:noinline
func parked(started, stop chan struct{}) { started <- struct{}{}; <-stop }

//go:noinline
func returning(started, stop chan struct{}) { started <- struct{}{}; <-stop }

// A goroutine left in the package's code is found until it ends; the
// caller's own is not, nor one whose only frames of the package are done.
func TestGoroutines(t *testing.T) {
	started, stop := make(chan struct{}), make(chan struct{})
	go parked(started, stop)
	<-started
	if gs := Left(0, pkg, pkg+"TestGoroutines"); len(gs) != 1 {
		t.Fatalf("found %d goroutines, want the parked one:\n%q", len(gs), gs)
	}
	if gs := Left(0, pkg, pkg+"parked", pkg+"TestGoroutines"); len(gs) != 0 {
		t.Errorf("a goroutine whose frames are all done is found:\n%q", gs)
	}
	go returning(started, stop)
	<-started
	if gs := Left(0, pkg, pkg+"TestGoroutines"); len(gs) != 2 {
		t.Errorf("found %d goroutines, want 2", len(gs))
	}
	close(stop)
	if gs := Left(5*time.Second, pkg, pkg+"TestGoroutines"); len(gs) != 0 {
		t.Errorf("goroutines found after they ended:\n%q", gs)
	}
}
