package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
)

// TestRefusedReplaceKeepsScopedSocket: a replacement refused because its
// file target has a symlink on its way leaves the replaced container
// running, its scoped socket served.
func TestRefusedReplaceKeepsScopedSocket(t *testing.T) {
	d, dir := testDaemon(t)
	b := backend{d}
	ctx := context.Background()
	sock := filepath.Join(dir, "t.sock")
	os.Symlink(t.TempDir(), filepath.Join(dir, "link"))
	for i, file := range []string{dir + "/t/t.log", dir + "/link/x/t.log"} {
		c, err := parseContainer(fmt.Sprintf("name: t\ncgroup: /sys/fs/cgroup/t\ndeliver: {file: %s, beneath: %s}\nsocket: %s\n", file, dir, sock))
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Register(ctx, c, control.RegisterOptions{Replace: true})
		if (err == nil) != (i == 0) {
			t.Fatalf("registering with file %s: %v", file, err)
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl, err := control.Dial(tctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if cs, err := cl.Containers(tctx); err != nil || len(cs) != 1 || cs[0].Target != "file:"+dir+"/t/t.log" {
		t.Errorf("the kept container's scoped socket: %+v, %v", cs, err)
	}
}
