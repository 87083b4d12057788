package remote

import (
	"strings"
	"testing"
	"time"
)

func TestSanitize(t *testing.T) {
	long := "type=EXECVE msg=audit(1.000:1): " + strings.Repeat("a", 200)
	tests := []struct {
		name, in, want string
		v              verdict
	}{
		{"plain", "type=USER msg=audit(1.000:1): x", "type=USER msg=audit(1.000:1): x", keep},
		{"trailing newline dropped", "type=USER msg=audit(1.000:1): x\n", "type=USER msg=audit(1.000:1): x", keep},
		{"EOE", "type=EOE msg=audit(1.000:1): ", "", skip},
		{"EOE with node", "node=h1 type=EOE msg=audit(1.000:1): ", "", skip},
		{"not EOE", "type=EOEX msg=audit(1.000:1): ", "type=EOEX msg=audit(1.000:1): ", keep},
		{"empty", "", "", skip},
		{"forged line", "type=USER msg=audit(1.000:1): a\ntype=LOGIN msg=audit(1.000:2): b", "type=USER msg=audit(1.000:1): a?type=LOGIN msg=audit(1.000:2): b", replaced},
		{"NUL and CR", "type=USER msg=audit(1.000:1): a\x00b\rc", "type=USER msg=audit(1.000:1): a?b?c", replaced},
		{"separator", "type=USER msg=audit(1.000:1): msg='a\x1dAUID=\"root\"'", "type=USER msg=audit(1.000:1): msg='a?AUID=\"root\"'", replaced},
		{"truncated", long, long[:100-len(" truncated=232")] + " truncated=232", truncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, v := sanitize(nil, []byte(tt.in), 100)
			if string(got) != tt.want || v != tt.v {
				t.Errorf("sanitize(%q)\n got %q, %v\nwant %q, %v", tt.in, got, v, tt.want, tt.v)
			}
			if len(got) > 100 {
				t.Errorf("payload of %d bytes exceeds the limit", len(got))
			}
		})
	}
}

func TestLostNotice(t *testing.T) {
	now := time.Unix(1700000000, 7e6)
	got := string(LostNotice(nil, 12, []byte("type=SYSCALL msg=audit(1699999999.250:77): x"), now))
	if want := "type=DAEMON_ERR msg=audit(1699999999.250:0): op=queue-lost lost=12"; got != want {
		t.Errorf("with a record\n got %q\nwant %q", got, want)
	}
	got = string(LostNotice(nil, 3, []byte("garbage"), now))
	if want := "type=DAEMON_ERR msg=audit(1700000000.007:0): op=queue-lost lost=3"; got != want {
		t.Errorf("without a timestamp\n got %q\nwant %q", got, want)
	}
}

func TestInflightWrap(t *testing.T) {
	var f inflight
	seq := uint32(0xfffffffe)
	for i := range 4 {
		f.push(entry{seq: seq + uint32(i), item: uint64(i + 1), last: true})
	}
	if f.ack(seq + 4) {
		t.Error("acked a sequence number never sent")
	}
	for _, s := range []uint32{seq + 1, 0, seq, 1} { // out of order, across the wrap
		if !f.ack(s) {
			t.Fatalf("ack %d refused", s)
		}
	}
	if f.ack(seq) {
		t.Error("duplicate ack accepted")
	}
	if p := f.pop(); p.commit != 4 || p.records != 4 || f.len() != 0 {
		t.Errorf("pop: commit %d records %d left %d, want 4 4 0", p.commit, p.records, f.len())
	}
}

func TestRateLimit(t *testing.T) {
	r := rateLimit{every: time.Second, burst: 2}
	now := time.Unix(0, 0)
	got := []bool{r.allow(now), r.allow(now), r.allow(now), r.allow(now.Add(time.Second)), r.allow(now.Add(time.Second))}
	want := []bool{true, true, false, true, false}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("allow sequence %v, want %v", got, want)
		}
	}
}
