// Package queue holds the copies of audit records waiting to be delivered to
// one container: a bounded queue per container with a memory part, a disk
// spool part and an account of what it lost.
//
// It is for keeping a slow or absent tenant from slowing the host log or any
// other tenant: Push never blocks and never fails. It is not a general
// message queue, not shared between containers, and not a durable log: the
// host log is the durable, complete record; a queue keeps copies for as long
// as its limits allow and then drops the oldest, and says how many.
//
// # Memory and spool
//
// Items go to memory, a byte ring that grows to Limits.Memory as needed (a
// steady Push allocates nothing; an idle queue costs under 1 KiB). When it is full, the oldest items move
// to the spool, append-only segment files in the queue's directory; when the
// spool is full too, its oldest segment is dropped. Without a spool the
// oldest items are dropped one by one. Read hands out the spool's items
// first, then memory's, in Seq order. Every drop is counted in Stats with its
// reason, and the next item read carries the number in Item.Lost.
//
// # Delivery
//
// A reader Reads a batch, delivers it, and Commits the last Seq delivered,
// which frees everything up to it. After a reconnect it calls Rewind and
// reads again from the oldest uncommitted item: delivery is at least once.
// An item whose Lost was handed out reports it again after a Rewind, until
// it is committed. Items dropped after they were read, while the reader had
// not committed them yet, are not reported at once: if the reader commits
// past them it delivered them; if it rewinds, they are reported then.
//
// # Durability
//
// A segment frame carries its length, its Seq and a CRC-32C, so that a
// frame cut short by a crash, or never written, is found: Open cuts the
// segment back to its last good frame and nothing before that is lost.
// Frames reach the file in 64 KiB writes, not one per item, and the queue
// calls fsync when a segment is full (in the background: the producer does
// not wait for the disk) and on Close; it never fsyncs per item.
//
// Close writes every uncommitted item still in memory to the spool and
// seals it; the next Open resumes there, with Seq continuing. If the process
// is killed instead (kill -9, a panic, the OOM killer), the spool survives
// up to its last write, and the items that were only in memory (or waiting
// in the write buffer) are lost, but counted: Push and Commit keep their
// sequence numbers in a small state file mapped into memory, which the
// kernel writes back even after the process dies. The next Open reports the
// exact number in Stats.Dropped.Crash and in the Lost of the first item
// pushed after it. A power loss or kernel crash can also lose the spool's
// last seconds of writes; they are cut off as a torn tail and the crash
// count is then a best effort. A queue without a spool keeps nothing across
// a restart and starts again at Seq 1.
package queue
