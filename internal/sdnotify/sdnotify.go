// Package sdnotify tells systemd about the daemon's state (sd_notify(3)):
// one datagram to the unix socket systemd names in $NOTIFY_SOCKET, for a
// unit of Type=notify. Without $NOTIFY_SOCKET it does nothing.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// The states the daemon sends.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
)

// Notify sends state (lines of KEY=VALUE) to $NOTIFY_SOCKET. It returns
// false and no error when the variable is unset: not started by systemd,
// or by a unit of another type.
func Notify(state string) (bool, error) {
	return NotifySocket(os.Getenv("NOTIFY_SOCKET"), state)
}

// NotifySocket sends state to the socket path: a filesystem path, or an
// abstract socket written with a leading '@'.
func NotifySocket(path, state string) (bool, error) {
	if path == "" {
		return false, nil
	}
	if !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "@") {
		return false, fmt.Errorf("notifying systemd: NOTIFY_SOCKET %q is neither a path nor an abstract socket (@NAME)", path)
	}
	name := path
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("notifying systemd at %s: %w", path, err)
	}
	defer conn.Close()
	n, err := conn.Write([]byte(state))
	if err == nil && n != len(state) {
		err = errors.New("short write")
	}
	if err != nil {
		return false, fmt.Errorf("notifying systemd at %s: %w", path, err)
	}
	return true, nil
}
