package test

import (
	"bytes"
	le "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listenerDaemon runs auditd-ns in listener mode on a free loopback port
// with the given extra listen keys; it returns the address, the log path
// and a function reading the daemon's stderr.
func listenerDaemon(t *testing.T, keys string) (addr, log string, stderr func() string) {
	t.Helper()
	dir := t.TempDir()
	addr = fmt.Sprintf("127.0.0.1:%d", port(t))
	cfg := filepath.Join(dir, "auditd-ns.yaml")
	body := fmt.Sprintf("local_events: no\nlisten: {address: %q%s}\nlog_file: %s/log/audit.log\nstate_dir: %s/state\ncontrol_socket: %s/control.sock\nlog_level: debug\n", addr, keys, dir, dir, dir)
	must(t, os.WriteFile(cfg, []byte(body), 0o600))
	d := exec.Command(binary, "run", "--config", cfg)
	errFile := filepath.Join(dir, "stderr")
	derr, _ := os.Create(errFile)
	d.Stderr = derr
	watchRaces(t, errFile)
	must(t, d.Start())
	stderr = func() string { b, _ := os.ReadFile(errFile); return string(b) }
	t.Cleanup(func() {
		d.Process.Kill()
		d.Wait()
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", stderr())
		}
	})
	waitAccepting(t, addr)
	return addr, filepath.Join(dir, "log", "audit.log"), stderr
}

// rlFrame is one frame of auditd's remote-logging protocol.
func rlFrame(typ, seq uint32, payload string) []byte {
	b := make([]byte, 16, 16+len(payload))
	le.LittleEndian.PutUint32(b[0:], 0xff0000fe)
	le.LittleEndian.PutUint32(b[6:], typ)
	le.LittleEndian.PutUint16(b[10:], uint16(len(payload)))
	le.LittleEndian.PutUint32(b[12:], seq)
	return append(b, payload...)
}

// readAck reads one reply from c and fails unless it acks seq.
func readAck(t *testing.T, c net.Conn, seq uint32) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [16]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("waiting for the ack of %d: %v", seq, err)
	}
	if typ, got := le.LittleEndian.Uint32(hdr[6:]), le.LittleEndian.Uint32(hdr[12:]); typ != 0x40000000 || got != seq {
		t.Fatalf("reply type %#x seq %d, want ack %d", typ, got, seq)
	}
}

// served sends a heartbeat on c and reports whether it was acknowledged.
func served(c net.Conn) bool {
	c.Write(rlFrame(1, 99, ""))
	c.SetReadDeadline(time.Now().Add(time.Second))
	var hdr [16]byte
	_, err := io.ReadFull(c, hdr[:])
	return err == nil && le.LittleEndian.Uint32(hdr[6:]) == 0x40000000
}

// hungUp reports whether the daemon closed c within d, sending nothing.
func hungUp(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(make([]byte, 64))
	var ne net.Error
	return n == 0 && err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestIntegrationListenerEmptyAllow: allow: [] admits no peer; its record
// never reaches the log.
func TestIntegrationListenerEmptyAllow(t *testing.T) {
	addr, log, stderr := listenerDaemon(t, ", allow: []")
	c, err := net.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	c.Write(rlFrame(0, 1, "type=USER msg=audit(1700000000.001:1): pid=1 uid=0 auid=0 ses=1 msg='op=intruder'"))
	if !hungUp(c, 5*time.Second) {
		t.Fatal("a peer was admitted by allow: []")
	}
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(stderr(), "peer address not allowed") }, "the refusal in the daemon's log")
	if b, _ := os.ReadFile(log); bytes.Contains(b, []byte("intruder")) {
		t.Errorf("the refused peer's record is in the log:\n%s", b)
	}
}

// TestIntegrationListenerTimeouts: a peer dribbling a frame a byte at a
// time is cut at frame_timeout from its first byte and its slot goes to
// the next peer; a silent peer is closed after idle_timeout.
func TestIntegrationListenerTimeouts(t *testing.T) {
	addr, _, stderr := listenerDaemon(t, ", max_connections: 1, frame_timeout: 1s, idle_timeout: 2s")
	var slow net.Conn
	waitFor(t, 5*time.Second, func() bool { // admitted once waitAccepting's probe has left
		var err error
		if slow, err = net.Dial("tcp", addr); err != nil {
			return false
		}
		if !served(slow) {
			slow.Close()
			return false
		}
		return true
	}, "the dribbling peer to be admitted")
	defer slow.Close()
	f := rlFrame(0, 1, "type=USER msg=audit(1700000000.001:1): "+strings.Repeat("x", 100))
	go func() {
		for i := range f {
			if _, err := slow.Write(f[i : i+1]); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond) // the whole frame would take 23s
		}
	}()
	start := time.Now()
	if !hungUp(slow, 6*time.Second) {
		t.Fatalf("dribbling peer still connected after %v", time.Since(start))
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("dribbling peer cut after %v, want about the 1s frame_timeout", d)
	}
	if !strings.Contains(stderr(), "frame incomplete") {
		t.Error("the daemon does not say why it cut the peer")
	}
	// The one slot is free again; the next peer is served, then falls idle.
	var c net.Conn
	waitFor(t, 5*time.Second, func() bool {
		var err error
		if c, err = net.Dial("tcp", addr); err != nil {
			return false
		}
		if !served(c) {
			c.Close()
			return false
		}
		return true
	}, "a peer to be served after the dribbler was cut")
	defer c.Close()
	idle := time.Now()
	if !hungUp(c, 8*time.Second) {
		t.Fatal("idle peer still connected")
	}
	if d := time.Since(idle); d < 1500*time.Millisecond {
		t.Errorf("idle peer closed after %v, before idle_timeout", d)
	}
}

// TestIntegrationListenerSeparators: a 0x1d and a CR inside a received
// user message are replaced before the record is logged, so ausearch reads
// the record's own auid and not one the message's text forged; the
// separator of a well-formed ENRICHED line is kept and read as such.
func TestIntegrationListenerSeparators(t *testing.T) {
	needTools(t)
	addr, log, _ := listenerDaemon(t, "")
	c, err := net.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	c.Write(rlFrame(0, 1, "type=USER msg=audit(1700000000.001:9101): pid=1 uid=0 auid=0 ses=1 msg='op=harden-sep a\x1dAUID=\"forged\" b\rc'"))
	c.Write(rlFrame(0, 2, "type=SYSCALL msg=audit(1700000000.002:9102): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=0 ppid=1 pid=2 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"x\" exe=\"/x\" key=\"harden\"\x1dARCH=x86_64 SYSCALL=execve AUID=\"enriched-ok\" UID=\"root\" GID=\"root\""))
	c.Write(rlFrame(0, 3, "type=EOE msg=audit(1700000000.002:9102): ")) // ends the event for ausearch
	for seq := range uint32(3) {
		readAck(t, c, seq+1)
	}
	b, err := os.ReadFile(log)
	must(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, ":9101)") && (strings.ContainsAny(l, "\x1d\r") || !strings.Contains(l, "a?AUID=\"forged\" b?c")) {
			t.Errorf("user message logged as %q", l)
		}
	}
	user := ausearch(t, log, "-i", "-a", "9101")
	if !strings.Contains(user, "auid=root") || strings.Contains(user, "auid=forged") {
		t.Errorf("ausearch -i reads the user message as:\n%s", user)
	}
	if sc := ausearch(t, log, "-i", "-a", "9102"); !strings.Contains(sc, "auid=enriched-ok") || !strings.Contains(sc, "syscall=execve") {
		t.Errorf("ausearch -i reads the ENRICHED line as:\n%s", sc)
	}
}

// ausearch runs the real ausearch on file and returns its output.
func ausearch(t *testing.T, file string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ausearch", append([]string{"-if", file}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ausearch %v: %v\n%s", args, err, out)
	}
	return string(out)
}
