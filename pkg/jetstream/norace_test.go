//go:build !race

package jetstream

// raceScale: see race_test.go.
const raceScale = 1
