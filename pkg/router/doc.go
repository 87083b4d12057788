// Package router turns the record stream into events and copies each event
// to every registered container on its chain, innermost first, through that
// container's rules and into its bounded queue.
//
// The host log is written before records reach the router, and the router
// never blocks its producer: when it falls behind, records are not routed
// (and counted) rather than delaying the host log. A container's queue never
// blocks the router either.
//
// The chain of an event comes from its CONTAINER_ID record on a kernel with
// the container-ID patches. On a stock kernel it comes from the cgroup of
// the event's pid, through an Attributor, and the registry's parent links.
//
// A container's copies are in the host view (ids as the kernel wrote them)
// unless Container.SetView gives it namespaces: then each of its copy lines
// is translated by pkg/view into a buffer of the copy's own, with its
// sessions those begun by the LOGIN records routed to it. The event, and
// so the host log and every other container's copy, is left as it was.
package router
