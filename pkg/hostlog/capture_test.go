package hostlog_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
)

// TestIntegrationCaptureGolden refreshes testdata from the real kernel and
// the real auditd: auditd (ENRICHED format) is the registered daemon while a
// multicast reader captures the raw records it is sent. Run with -update.
func TestIntegrationCaptureGolden(t *testing.T) {
	if !*update {
		t.Skip("captures golden files only with -update")
	}
	auditd, err := exec.LookPath("auditd")
	if err != nil {
		t.Skip("needs the real auditd (Debian package auditd):", err)
	}
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	conf := fmt.Sprintf("local_events = yes\nwrite_logs = yes\nlog_file = %s/audit.log\nlog_format = ENRICHED\nflush = INCREMENTAL_ASYNC\nfreq = 50\nnum_logs = 5\nmax_log_file = 100\nmax_log_file_action = ROTATE\nspace_left = 2\nspace_left_action = IGNORE\nadmin_space_left = 1\nadmin_space_left_action = IGNORE\ndisk_full_action = IGNORE\ndisk_error_action = IGNORE\nname_format = NONE\n", dir)
	if err := os.WriteFile(filepath.Join(dir, "auditd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	mc, err := libaudit.NewMulticastAuditClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var recs []kernelRecord
	go func() {
		// go-libaudit's Receive cannot be interrupted; this goroutine ends
		// with the test binary.
		for {
			m, err := mc.Receive(false)
			if err != nil {
				return
			}
			mu.Lock()
			recs = append(recs, kernelRecord{Type: uint16(m.Type), Data: strings.TrimRight(string(m.Data), "\x00\n")})
			mu.Unlock()
		}
	}()
	cmd := exec.Command(auditd, "-n", "-s", "nochange", "-c", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := ctl.SetEnabled(1); err != nil {
		t.Fatal(err)
	}
	// The commands run as nobody under a login uid of their own, which no
	// other process on the machine has: the rules select them and nothing
	// a busy host runs beside the capture.
	auid := 2_000_000_000 + os.Getpid()
	for _, r := range []string{
		fmt.Sprintf("-a always,exit -F arch=b64 -S execve -F uid=65534 -F auid=%d -k golden", auid),
		fmt.Sprintf("-a always,exit -F arch=b64 -S connect -F uid=65534 -F auid=%d -k golden-net", auid),
		fmt.Sprintf("-a always,exit -F arch=b64 -S openat -F uid=65534 -F auid=%d -F dir=/etc -k golden-watch", auid),
		fmt.Sprintf("-a always,exit -F arch=b64 -S connect -F pid=%d -k golden-inet", os.Getpid()),
	} {
		wire, err := auditrule.Build(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctl.AddRule(wire); err != nil {
			t.Fatal(err)
		}
	}
	// A root shell sets the login uid, then setpriv becomes nobody and
	// executes the audited shell: its execve is the first one recorded.
	const audited = "cat /etc/hosts >/dev/null; ls -l /tmp >/dev/null; printf 'a\\nb' | cat >/dev/null; true 'quoted arg' \"x y\""
	sh := exec.Command("/bin/sh", "-c", `echo "$1" > /proc/self/loginuid && exec setpriv --reuid=65534 --regid=65534 --clear-groups /bin/sh -c "$2"`, "sh", fmt.Sprint(auid), audited)
	sh.Dir = "/"
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("running the audited commands: %v: %s", err, out)
	}
	for _, addr := range []string{"127.0.0.1:9", "[::1]:9"} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
		}
	}
	ctl.DeleteRules()
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	writeGolden(t, dir, recs)
}

// writeGolden keeps the records that appear in both captures, in order.
func writeGolden(t *testing.T, dir string, recs []kernelRecord) {
	f, err := os.Open(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	logged := map[string]string{} // payload -> auditd's full line
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		raw, _, _ := strings.Cut(sc.Text(), "\x1d")
		if _, msg, ok := strings.Cut(raw, " msg="); ok {
			logged[msg] = sc.Text() + "\n"
		}
	}
	in, _ := os.Create("testdata/kernel.jsonl")
	out, _ := os.Create("testdata/auditd-enriched.log")
	defer in.Close()
	defer out.Close()
	n := 0
	for _, r := range recs {
		// auditd replaces embedded newlines; so does the lookup key.
		key := strings.ReplaceAll(r.Data, "\n", " ")
		if line, ok := logged[key]; ok {
			b, _ := json.Marshal(r)
			in.Write(append(b, '\n'))
			out.WriteString(line)
			n++
			delete(logged, key)
		}
	}
	if n < 10 {
		t.Fatalf("only %d records matched between the capture and auditd's log", n)
	}
	t.Logf("wrote %d golden records", n)
}
