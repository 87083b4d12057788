package source

import (
	"encoding/binary"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// port returns the netlink port the kernel gave k's socket.
func (k *Kernel) port(t *testing.T) uint32 {
	t.Helper()
	var port uint32
	var err error
	k.raw.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if sa, err = unix.Getsockname(int(fd)); err == nil {
			port = sa.(*unix.SockaddrNetlink).Pid
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// sendAudit sends one audit netlink message of type typ from a socket of
// its own to the audit socket at port (0 is the kernel).
func sendAudit(t *testing.T, port uint32, typ uint16, payload string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		t.Skipf("needs an audit netlink socket: %v", err)
	}
	defer unix.Close(fd)
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(payload))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(payload)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	msg = append(msg, payload...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: port}); err != nil {
		if err == unix.EPERM {
			t.Skip("sending to another netlink socket needs CAP_NET_ADMIN")
		}
		t.Fatalf("sending to port %d: %v", port, err)
	}
}

// A message another process's socket sends to the daemon's port is not
// the kernel's: it is dropped and counted, never returned as a record. It
// needs no registration (nothing is asked of the kernel).
func TestIntegrationKernelDropsForeignSender(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to send between netlink sockets (CAP_NET_ADMIN)")
	}
	k, err := OpenKernel()
	if err != nil {
		t.Skipf("needs an audit netlink socket: %v", err)
	}
	defer k.Close()
	sendAudit(t, k.port(t), 1100, "audit(1700000000.000:4242): pid=1 uid=0 auid=0 ses=1 msg='op=forged'")
	if typ, data, ok := k.Drain(); ok {
		t.Fatalf("a message from another socket was taken as a record: type %d %q", typ, data)
	}
	if n := k.Foreign(); n != 1 {
		t.Errorf("Foreign() = %d, want 1", n)
	}
	// Receive drops it the same way.
	sendAudit(t, k.port(t), 1100, "audit(1700000000.000:4243): msg='op=forged'")
	k.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if typ, data, err := k.Receive(nil); err == nil {
		t.Fatalf("Receive returned a foreign message: type %d %q", typ, data)
	}
	if n := k.Foreign(); n != 2 {
		t.Errorf("Foreign() = %d after Receive, want 2", n)
	}
}
