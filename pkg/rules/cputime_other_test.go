//go:build !linux

package rules_test

import "testing"

func loopCPU(b *testing.B, f func()) {
	for b.Loop() {
		f()
	}
}
