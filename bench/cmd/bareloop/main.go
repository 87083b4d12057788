// Command bareloop registers as the kernel's audit daemon and reads and
// discards records until SIGTERM or SIGINT, then unregisters and prints
// "SYSCALL_RECORDS ALL_RECORDS": the SYSCALL records keyed "bench" (the
// benchmark's rule), not the unkeyed ones the kernel adds for the
// syscalls that changed the audit configuration, and every record. It is
// the limit in the side-by-side kernel-path benchmark: no daemon can be
// faster than not writing at all. -batch 1 (the default) reads one message
// per recvfrom(2) as soon as it comes, as auditd does; -batch 64 -gather
// 1ms reads up to 64 per recvmmsg(2) and lets records gather 1 ms after
// emptying the socket, as auditd-ns does, which is the honest limit for
// it.
// Needs CAP_AUDIT_CONTROL and no other registered daemon.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// benchKey ends the SYSCALL record of each call the benchmark audits.
var benchKey = []byte(`key="bench"`)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bareloop:", err)
		os.Exit(1)
	}
}

func run() error {
	batch := flag.Int("batch", 1, "messages read per system call: 1 uses recvfrom, more recvmmsg")
	gather := flag.Duration("gather", 0, "how long to let records gather after a read that emptied the socket")
	flag.Parse()
	k, err := source.OpenKernel()
	if err != nil {
		return err
	}
	defer k.Close()
	if err := k.SetBatch(*batch); err != nil {
		return err
	}
	if err := k.SetGather(*gather); err != nil {
		return err
	}
	if err := k.Register(); err != nil {
		return fmt.Errorf("registering with the kernel: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	var syscalls, all atomic.Int64
	done := make(chan error, 1)
	go func() {
		for {
			typ, data, err := k.Receive(nil)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				done <- nil
				return
			}
			if errors.Is(err, syscall.ENOBUFS) {
				continue // the kernel dropped messages; its lost counter says how many
			}
			if err != nil {
				done <- err
				return
			}
			all.Add(1)
			if typ == 1300 && bytes.HasSuffix(bytes.TrimRight(data, "\x00\n"), benchKey) {
				syscalls.Add(1)
			}
		}
	}()
	fmt.Fprintln(os.Stderr, "bareloop: registered")
	var rerr error
	select {
	case <-sig:
		k.Interrupt()
		rerr = <-done
	case rerr = <-done:
	}
	if err := k.Unregister(); err != nil {
		return fmt.Errorf("unregistering: %w", err)
	}
	fmt.Printf("%d %d\n", syscalls.Load(), all.Load())
	return rerr
}
