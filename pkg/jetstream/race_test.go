//go:build race

package jetstream

// raceScale divides the record counts of the cluster test, and multiplies
// its ack timeout, under the race detector, which slows the servers and
// publishers of one process by 5 to 10 times: the test still checks every
// record once across a node's loss, with fewer of them.
const raceScale = 5
