package hostlog_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

var update = flag.Bool("update", false, "capture new golden files from the real kernel and the real auditd (root)")

// kernelRecord is one record as the kernel sent it, captured from the audit
// multicast group while the real auditd wrote the same record to its log.
type kernelRecord struct {
	Type uint16 `json:"type"`
	Data string `json:"data"`
}

func loadGolden(t *testing.T) ([]kernelRecord, []string) {
	t.Helper()
	b, err := os.ReadFile("testdata/kernel.jsonl")
	if err != nil {
		t.Fatalf("reading golden input: %v (capture it with go test -run TestIntegrationCaptureGolden -update)", err)
	}
	var recs []kernelRecord
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r kernelRecord
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("golden input: %v", err)
		}
		recs = append(recs, r)
	}
	want, err := os.ReadFile("testdata/auditd-enriched.log")
	if err != nil {
		t.Fatalf("reading golden output: %v", err)
	}
	lines := strings.SplitAfter(string(want), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) != len(recs) {
		t.Fatalf("golden files disagree: %d kernel records, %d auditd lines", len(recs), len(lines))
	}
	return recs, lines
}

// TestGoldenRaw checks that every record the kernel sent is written exactly
// as the real auditd wrote it (the part before the enrichment separator).
func TestGoldenRaw(t *testing.T) {
	recs, want := loadGolden(t)
	for i, r := range recs {
		got := string(record.AppendLine(nil, "", r.Type, []byte(r.Data)))
		w, _, _ := strings.Cut(want[i], "\x1d")
		w = strings.TrimSuffix(w, "\n") + "\n"
		if got != w {
			t.Errorf("record %d:\n got %q\nwant %q", i, got, w)
		}
	}
}

// TestGoldenEnriched compares ENRICHED output with auditd's, line by line.
func TestGoldenEnriched(t *testing.T) {
	recs, want := loadGolden(t)
	dir := t.TempDir()
	w, err := hostlog.Open(hostlog.Options{Path: dir + "/audit.log", Format: hostlog.Enriched, Flush: hostlog.FlushNone})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		w.Write(r.Type, []byte(r.Data))
	}
	w.Close()
	f, _ := os.Open(dir + "/audit.log")
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		if got := sc.Text() + "\n"; got != want[i] {
			t.Errorf("record %d:\n got %q\nwant %q", i, got, want[i])
		}
	}
}
