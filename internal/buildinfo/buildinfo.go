// Package buildinfo says which build of auditd-ns is running: --version
// and the metrics' auditd_ns_build_info.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// version is set at build time: go build -ldflags "-X
// github.com/auditd-ns/auditd-ns/internal/buildinfo.version=..." (make
// build sets it from git describe).
var version = ""

// Version is the version set at build time, else the module's version and
// VCS revision the Go toolchain recorded, else "(devel)".
func Version() string {
	if version != "" {
		return version
	}
	v := "(devel)"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v = bi.Main.Version
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" && v == "(devel)" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " " + rev + dirty
	}
	return v
}

// GoVersion is the Go release the binary was built with.
func GoVersion() string { return runtime.Version() }
