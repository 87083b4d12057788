package source

import (
	"runtime"
	"testing"
)

func TestAddSpareProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })

	t.Setenv("GOMAXPROCS", "3")
	if got := AddSpareProcs(); got != before || runtime.GOMAXPROCS(0) != before {
		t.Fatalf("with GOMAXPROCS set in the environment: got %d, GOMAXPROCS %d, want %d unchanged", got, runtime.GOMAXPROCS(0), before)
	}
	t.Setenv("GOMAXPROCS", "")
	if got := AddSpareProcs(); got != before+SpareProcs || runtime.GOMAXPROCS(0) != before+SpareProcs {
		t.Fatalf("got %d, GOMAXPROCS %d, want %d", got, runtime.GOMAXPROCS(0), before+SpareProcs)
	}
}
