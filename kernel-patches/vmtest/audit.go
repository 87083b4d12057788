package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/go-libaudit/v2/rule"
	"github.com/elastic/go-libaudit/v2/rule/flags"
	"golang.org/x/sys/unix"
)

// Audit netlink message types and constants used here (uapi/linux/audit.h).
const (
	auditGet       = 1000
	auditSet       = 1001
	auditAddRule   = 1011
	auditDelRule   = 1012
	auditListRules = 1013
	auditUser      = 1005
	auditEOE       = 1320
	auditSyscall   = 1300
	auditObjPID    = 1318
	containerOp    = 1020
	containerID    = 1340

	statusEnabled      = 0x1
	statusPID          = 0x4
	statusBacklogLimit = 0x10

	fieldContid      = 27
	featureContainer = 0x80
	opEqual          = 0x40000000
	opNotEqual       = 0x30000000
)

// record is one audit record as the kernel sent it.
type record struct {
	typ    int
	ts     string // seconds.milliseconds
	serial string
	text   string // after "audit(...): "
}

func (r record) String() string { return fmt.Sprintf("type=%d %s: %s", r.typ, r.serial, r.text) }

// auditd is this guest's audit daemon: a registered socket whose reader
// collects every record, and a control socket for requests.
type auditd struct {
	ctl  int
	mu   sync.Mutex // guards recs
	recs []record
	seq  uint32
	lost atomic.Int64 // socket overflows seen by read

	// While discarding (the overhead loops), read counts the records
	// and notes the guest time of the last one.
	counted atomic.Int64
	last    atomic.Int64 // time.Now().UnixNano() of the last record

	// pause and resume stop the reader between two reads, so that the
	// overhead loops do not pay for it (see overhead.go).
	pmu    sync.Mutex
	pcond  *sync.Cond
	paused bool
	parked bool
}

var daemon *auditd

// startAuditd registers this process as the audit daemon and enables audit.
func startAuditd() (*auditd, error) {
	recv, err := nlSocket()
	if err != nil {
		return nil, err
	}
	ctl, err := nlSocket()
	if err != nil {
		return nil, err
	}
	a := &auditd{ctl: ctl}
	a.pcond = sync.NewCond(&a.pmu)
	st := make([]byte, 44)
	binary.LittleEndian.PutUint32(st[0:], statusPID|statusEnabled)
	binary.LittleEndian.PutUint32(st[4:], 1)
	binary.LittleEndian.PutUint32(st[12:], uint32(os.Getpid()))
	if err := a.request(recv, auditSet, st); err != nil {
		return nil, fmt.Errorf("registering as audit daemon: %w", err)
	}
	// Room for a paused reader's records: one overhead round of
	// recordedCalls events of up to 4 records of about 2.3 KiB each
	// (the kernel doubles the value).
	_ = unix.SetsockoptInt(recv, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
	// The reader wakes at least every 10 ms, so that pause is quick.
	tv := unix.NsecToTimeval(int64(10 * time.Millisecond))
	_ = unix.SetsockoptTimeval(recv, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	go a.read(recv)
	if err := a.setBacklogLimit(8192); err != nil {
		return nil, err
	}
	return a, nil
}

// setBacklogLimit sets the kernel's audit_backlog_limit.
func (a *auditd) setBacklogLimit(n uint32) error {
	st := make([]byte, 44)
	binary.LittleEndian.PutUint32(st[0:], statusBacklogLimit)
	binary.LittleEndian.PutUint32(st[20:], n)
	if err := a.request(a.ctl, auditSet, st); err != nil {
		return fmt.Errorf("setting the backlog limit to %d: %w", n, err)
	}
	return nil
}

// pause stops the reader before its next read and waits until it has
// stopped: records then wait in the kernel's socket buffer, and no user
// space work of this process runs for them until resume.
func (a *auditd) pause() {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	a.paused = true
	for !a.parked {
		a.pcond.Wait()
	}
}

// resume lets the reader go on.
func (a *auditd) resume() {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	a.paused = false
	a.pcond.Broadcast()
}

// park is where the reader waits while paused.
func (a *auditd) park() {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	for a.paused {
		a.parked = true
		a.pcond.Broadcast()
		a.pcond.Wait()
	}
	a.parked = false
}

// quiet waits until no record has been counted for 100 ms and returns
// the count.
func (a *auditd) quiet() int64 {
	n := a.counted.Load()
	for {
		time.Sleep(100 * time.Millisecond)
		m := a.counted.Load()
		if m == n {
			return n
		}
		n = m
	}
}

func nlSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return -1, fmt.Errorf("opening audit netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return -1, fmt.Errorf("binding audit netlink socket: %w", err)
	}
	return fd, nil
}

// request sends one message with NLM_F_ACK on fd and waits for the ack.
// Replies other than the ack are returned by requestReplies.
func (a *auditd) request(fd int, typ uint16, payload []byte) error {
	_, err := a.requestReplies(fd, typ, payload, false)
	return err
}

func (a *auditd) send(fd int, typ uint16, flags uint16, payload []byte) (uint32, error) {
	a.seq++
	msg := make([]byte, unix.NLMSG_HDRLEN+len(payload))
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.LittleEndian.PutUint16(msg[4:], typ)
	binary.LittleEndian.PutUint16(msg[6:], flags)
	binary.LittleEndian.PutUint32(msg[8:], a.seq)
	copy(msg[unix.NLMSG_HDRLEN:], payload)
	return a.seq, unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// requestReplies sends a request and collects reply payloads until the
// ack (or, for dumps, NLMSG_DONE).
func (a *auditd) requestReplies(fd int, typ uint16, payload []byte, dump bool) ([][]byte, error) {
	// AUDIT_GET is answered from a kernel thread, after the ack: ask for
	// no ack and take the first reply.
	fl := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK)
	if typ == auditGet {
		fl = unix.NLM_F_REQUEST
	}
	seq, err := a.send(fd, typ, fl, payload)
	if err != nil {
		return nil, err
	}
	var replies [][]byte
	buf := make([]byte, 1<<16)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tv := unix.NsecToTimeval(int64(time.Second))
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		for off := 0; off+unix.NLMSG_HDRLEN <= n; {
			l := int(binary.LittleEndian.Uint32(buf[off:]))
			t := binary.LittleEndian.Uint16(buf[off+4:])
			s := binary.LittleEndian.Uint32(buf[off+8:])
			if l < unix.NLMSG_HDRLEN || off+l > n {
				l = n - off
			}
			body := buf[off+unix.NLMSG_HDRLEN : off+l]
			off += (l + 3) &^ 3
			if s != seq {
				continue
			}
			switch t {
			case unix.NLMSG_ERROR:
				errno := int32(binary.LittleEndian.Uint32(body))
				if errno != 0 {
					return replies, unix.Errno(-errno)
				}
				if !dump {
					return replies, nil
				}
			case unix.NLMSG_DONE:
				return replies, nil
			default:
				replies = append(replies, append([]byte(nil), body...))
				if typ == auditGet {
					return replies, nil
				}
			}
		}
	}
	return replies, fmt.Errorf("no reply to request type %d", typ)
}

var headerRE = regexp.MustCompile(`^audit\((\d+\.\d+):(\d+)\): ?`)

// read collects records from the registered socket forever.
func (a *auditd) read(fd int) {
	buf := make([]byte, 1<<16)
	for {
		a.park()
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			if err == unix.ENOBUFS {
				// The socket overflowed: records were lost, the
				// socket goes on.
				a.lost.Add(1)
				continue
			}
			fmt.Printf("INFO audit reader: %v\n", err)
			return
		}
		if n < unix.NLMSG_HDRLEN {
			continue
		}
		typ := int(binary.LittleEndian.Uint16(buf[4:]))
		if discard.Load() && typ != containerOp {
			a.counted.Add(1)
			a.last.Store(time.Now().UnixNano())
			continue
		}
		data := strings.TrimRight(string(buf[unix.NLMSG_HDRLEN:n]), "\x00\n")
		r := record{typ: typ, text: data}
		if m := headerRE.FindStringSubmatch(data); m != nil {
			r.ts, r.serial = m[1], m[2]
			r.text = data[len(m[0]):]
		}
		a.mu.Lock()
		a.recs = append(a.recs, r)
		a.mu.Unlock()
	}
}

// mark returns a position: later waits only look at records after it.
func (a *auditd) mark() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.recs)
}

// since returns a copy of the records after mark.
func (a *auditd) since(mark int) []record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]record(nil), a.recs[mark:]...)
}

// waitFor waits until a record after mark satisfies match, and returns it.
func (a *auditd) waitFor(mark int, timeout time.Duration, match func(record) bool) (record, bool) {
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range a.since(mark) {
			if match(r) {
				return r, true
			}
		}
		if time.Now().After(deadline) {
			return record{}, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// event returns the records of the event with serial, waiting for its EOE.
func (a *auditd) event(mark int, serial string) []record {
	a.waitFor(mark, 2*time.Second, func(r record) bool { return r.serial == serial && r.typ == auditEOE })
	var ev []record
	for _, r := range a.since(mark) {
		if r.serial == serial {
			ev = append(ev, r)
		}
	}
	return ev
}

// features returns the kernel's audit feature bitmap.
func (a *auditd) features() (uint32, error) {
	replies, err := a.requestReplies(a.ctl, auditGet, nil, false)
	if err != nil {
		return 0, err
	}
	for _, r := range replies {
		if len(r) >= 36 {
			return binary.LittleEndian.Uint32(r[32:]), nil
		}
	}
	return 0, fmt.Errorf("no audit status in reply")
}

// buildRule turns auditctl syntax into the wire format, appending a contid
// field (op "=" or "!=") when op is not empty.
func buildRule(spec, op string, contid uint64) ([]byte, error) {
	r, err := flags.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("parsing rule %q: %w", spec, err)
	}
	wf, err := rule.Build(r)
	if err != nil {
		return nil, fmt.Errorf("building rule %q: %w", spec, err)
	}
	if op == "" {
		return wf, nil
	}
	return appendContid(wf, op, contid)
}

// Offsets in struct audit_rule_data.
const (
	ruleFieldCount = 8
	ruleFields     = 12 + 64*4
	ruleValues     = ruleFields + 64*4
	ruleFieldFlags = ruleValues + 64*4
	ruleBufLen     = ruleFieldFlags + 64*4
	ruleHeader     = ruleBufLen + 4
)

func appendContid(wf []byte, op string, contid uint64) ([]byte, error) {
	le := binary.LittleEndian
	n := le.Uint32(wf[ruleFieldCount:])
	buflen := le.Uint32(wf[ruleBufLen:])
	if n >= 64 {
		return nil, fmt.Errorf("rule has no room for a contid field")
	}
	out := make([]byte, ruleHeader+int(buflen)+8)
	copy(out, wf[:ruleHeader+int(buflen)])
	flag := uint32(opEqual)
	if op == "!=" {
		flag = opNotEqual
	}
	le.PutUint32(out[ruleFields+4*int(n):], fieldContid)
	le.PutUint32(out[ruleValues+4*int(n):], 8)
	le.PutUint32(out[ruleFieldFlags+4*int(n):], flag)
	le.PutUint32(out[ruleFieldCount:], n+1)
	le.PutUint32(out[ruleBufLen:], buflen+8)
	le.PutUint64(out[ruleHeader+int(buflen):], contid)
	return out, nil
}

// addRule loads a rule; the returned function deletes it again.
func (a *auditd) addRule(t *T, spec, op string, contid uint64) func() {
	wf, err := buildRule(spec, op, contid)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := a.request(a.ctl, auditAddRule, wf); err != nil {
		t.Fatalf("adding rule %q %s %d: %v", spec, op, contid, errnoName(err))
	}
	return func() {
		if err := a.request(a.ctl, auditDelRule, wf); err != nil {
			t.Errorf("deleting rule %q: %v", spec, errnoName(err))
		}
	}
}

// listRules returns the loaded rules in wire format.
func (a *auditd) listRules() ([][]byte, error) {
	return a.requestReplies(a.ctl, auditListRules, nil, true)
}

// field returns the value of key= in a record's text.
func field(text, key string) string {
	for _, f := range strings.Fields(text) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

func itoa(i int) string { return strconv.Itoa(i) }

// samples prints the first record of each kind the patches add, and the
// record each CONTAINER_ID qualifies, for the cover letter and reviewers.
func (a *auditd) samples() {
	seen := map[string]bool{}
	recs := a.since(0)
	for _, r := range recs {
		var kind string
		switch r.typ {
		case containerOp:
			kind = "1020 " + field(r.text, "op") + " " + field(r.text, "res")
		case containerID:
			kind = "1340 " + field(r.text, "record")
		case auditNamespace:
			kind = "1341 " + field(r.text, "op")
		default:
			continue
		}
		if seen[kind] {
			continue
		}
		seen[kind] = true
		for _, x := range recs {
			if x.serial == r.serial && x.typ != auditEOE && x.typ != 1327 {
				fmt.Printf("SAMPLE %s type=%d msg=audit(%s): %s\n", kind, x.typ, x.serial, x.text)
			}
		}
	}
}
