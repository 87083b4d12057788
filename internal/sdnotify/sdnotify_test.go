package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	c := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	if sent, err := Notify(Ready + "\nSTATUS=up"); !sent || err != nil {
		t.Fatalf("Notify: %v %v", sent, err)
	}
	if got := read(t, c); got != "READY=1\nSTATUS=up" {
		t.Errorf("got %q", got)
	}
}

func TestNotifyAbstract(t *testing.T) {
	name := "auditd-ns-sdnotify-test-" + strings.ReplaceAll(t.TempDir(), "/", "-")
	c := listen(t, "\x00"+name)
	if sent, err := NotifySocket("@"+name, Stopping); !sent || err != nil {
		t.Fatalf("NotifySocket: %v %v", sent, err)
	}
	if got := read(t, c); got != Stopping {
		t.Errorf("got %q", got)
	}
}

func TestNotifyUnsetOrBad(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Errorf("unset: %v %v", sent, err)
	}
	if _, err := NotifySocket("relative.sock", Ready); err == nil {
		t.Error("a relative NOTIFY_SOCKET was accepted")
	}
	if _, err := NotifySocket(filepath.Join(t.TempDir(), "none.sock"), Ready); err == nil {
		t.Error("a socket nobody listens on gave no error")
	}
}
