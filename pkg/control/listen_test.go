package control_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
)

func TestListen(t *testing.T) {
	dir := sockDir(t)
	path := filepath.Join(dir, "sub", "control.sock")
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %v, want 0700", di.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "sub", ".ctl-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, err := control.Listen(path); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Errorf("listening on a live socket: %v", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Close left the socket file: %v", err)
	}
}

func TestListenStale(t *testing.T) {
	path := filepath.Join(sockDir(t), "control.sock")
	// A socket file nobody listens on, as a killed daemon leaves it.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	ln.Close()
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(sockDir(t), "control.sock")
	os.WriteFile(path, []byte("keep me"), 0o600)
	if _, err := control.Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Error("the file was touched")
	}
}

func TestRunStops(t *testing.T) {
	path := filepath.Join(sockDir(t), "control.sock")
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- (&control.Server{Backend: newBackend(t)}).Run(ctx, ln) }()
	c := dial(t, path) // an open, idle connection must not hold Run up
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v on cancellation, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the socket file is still there: %v", err)
	}
}
