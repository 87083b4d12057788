package bench

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

var captureOut = flag.String("capture", "", "capture a corpus of kernel records into this .log.gz file (test/corpus/capture.sh)")

// workloadAuid is the login uid of the captured workload, one that no
// other process on the machine has; every corpus rule selects it, so
// nothing else a busy host runs is recorded.
var workloadAuid = 4_000_000_000 + os.Getpid()%100_000_000

// corpusRules is the rule set of the capture, in auditctl syntax: program
// executions, writes and attribute changes under a watched directory,
// reads of /etc/passwd and the network calls of clients.
var corpusRules = []string{
	"-a always,exit -F arch=b64 -S execve,execveat -F auid=%[1]d -k exec",
	"-a always,exit -F arch=b64 -S connect,bind,listen,accept,accept4 -F auid=%[1]d -k net",
	"-a always,exit -F dir=%[2]s -F perm=wa -F auid=%[1]d -k watch",
	"-a always,exit -F path=/etc/passwd -F perm=r -F auid=%[1]d -k passwd",
	"-a always,exit -F path=/etc/shadow -F perm=r -F auid=%[1]d -k shadow",
}

// corpusWorkload is a small shell workload: commands, file changes in a
// watched directory ($1), HTTP requests to a loopback server (port $2).
// It sets its own login uid first, as a login would.
const corpusWorkload = `set -u
echo %d > /proc/self/loginuid
W=$1 PORT=$2
for i in $(seq 1 %d); do
  ls -l /etc >/dev/null; id root >/dev/null; getent passwd root >/dev/null; cat /etc/passwd >/dev/null
  head -c 100 /etc/shadow >/dev/null 2>&1 || true
  echo "$i" > "$W/f$i"; chmod 600 "$W/f$i"; chown 1:1 "$W/f$i"; mv "$W/f$i" "$W/g$i"
  ln -s "$W/g$i" "$W/l$i"; rm -f "$W/g$i" "$W/l$i"; mkdir "$W/d$i"; rmdir "$W/d$i"
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/$i" || true
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3 >/dev/null) 2>/dev/null || true
  sh -c 'uname -a; date' >/dev/null
done
`

var corpusIterations = flag.Int("capture-iterations", 150, "workload loops of the corpus capture")

// TestIntegrationCaptureCorpus records what the real kernel sends under
// corpusRules while corpusWorkload runs, as the real auditd logs it (RAW),
// into the gzip file -capture names. It takes the kernel test lock and
// restores the audit state.
func TestIntegrationCaptureCorpus(t *testing.T) {
	if *captureOut == "" {
		t.Skip("writes the corpus: run test/corpus/capture.sh")
	}
	ctl := testkernel.Take(t)
	_, err := ctl.DeleteRules()
	must(t, err)
	must(t, ctl.SetBacklogLimit(backlogLimit))
	must(t, ctl.SetBacklogWaitTime(60000))
	must(t, ctl.SetEnabled(1))
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched")
	must(t, os.Mkdir(watched, 0o755))
	a := startAuditd(t, ctl, filepath.Join(dir, "auditd"))
	auditctl := lookPath(t, "auditctl")
	for _, r := range corpusRules {
		args := strings.Fields(fmt.Sprintf(r, workloadAuid, watched))
		if out, err := exec.Command(auditctl, args...).CombinedOutput(); err != nil {
			t.Fatalf("auditctl %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	port := httpServer(t)
	script := filepath.Join(dir, "workload.sh")
	must(t, os.WriteFile(script, []byte(fmt.Sprintf(corpusWorkload, workloadAuid, *corpusIterations)), 0o700))
	if _, err := runTimeout(exec.Command(lookPath(t, "bash"), script, watched, fmt.Sprint(port)), 5*time.Minute); err != nil {
		t.Fatalf("workload: %v", err)
	}
	time.Sleep(time.Second)
	_, err = ctl.DeleteRules()
	must(t, err)
	a.stop()
	unregisterLeftover(t, ctl)
	raw, err := os.ReadFile(a.log)
	must(t, err)
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	zw.Write(raw)
	must(t, zw.Close())
	must(t, os.WriteFile(*captureOut, z.Bytes(), 0o644))
	t.Logf("%d records, %d bytes, %d compressed, in %s", bytes.Count(raw, []byte("\n")), len(raw), z.Len(), *captureOut)
}

// httpServer answers every connection on a loopback port with a minimal
// HTTP response; its own calls are not audited (no login uid).
func httpServer(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 4096)
				c.Read(buf)
				c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
