package daemon

import (
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// attributor returns how the router finds a record's container on a stock
// kernel (nil on a patched kernel, where records carry their chain).
func (d *Daemon) attributor(contid bool) router.Attributor {
	if contid {
		return nil
	}
	return d.cgroupAttributor()
}
