// Package auditrule turns audit.rules files (auditctl syntax) into the
// kernel's rule wire format (struct audit_rule_data), with the AUDIT_CONTID
// field of the container-ID patches, which go-libaudit's rule/flags parser
// does not know: "-F contid=N" in a line, or AppendContID on built bytes to
// scope a container's kernel_rules to its subtree.
//
// It does not talk to the kernel (the daemon loads what it builds) and it is
// not the YAML filter language of the containers' copies (package rules).
package auditrule

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/elastic/go-libaudit/v2/rule"
	"github.com/elastic/go-libaudit/v2/rule/flags"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
)

// File is an audit.rules file (auditctl syntax) turned into what the
// daemon sends to the kernel, in file order.
type File struct {
	// DeleteAll is set when the file has -D: delete loaded rules first.
	DeleteAll bool
	// Settings given with -b, -f, -r, --backlog_wait_time; nil if absent.
	BacklogLimit, Failure, RateLimit, BacklogWaitTime *uint32
	// Enabled is the value of -e (0, 1, or 2 to lock), nil if absent. The
	// daemon applies it after loading the rules, as auditctl does.
	Enabled *uint32
	// Rules in the kernel's wire format, each with its source line.
	Rules []Rule
	// IgnoreErrors is set by -i: a rule the kernel refuses is logged and
	// skipped rather than stopping the load.
	IgnoreErrors bool
}

// Rule is one -a/-A/-w rule.
type Rule struct {
	Wire []byte // struct audit_rule_data, as AUDIT_ADD_RULE takes it
	Line int    // its line in the file, from 1
	Text string // the line, trimmed
}

// AUDIT_CONTID, the rule field of the container-ID patches, and the
// kernel's comparison operators used with it.
const (
	FieldContID     = 27
	opEqual         = 0x40000000
	opNotEqual      = 0x30000000
	ruleHeaderSize  = 1040 // struct audit_rule_data up to buf
	fieldCountOff   = 8
	fieldsOff       = 268
	valuesOff       = 524
	fieldFlagsOff   = 780
	bufLenOff       = 1036
	maxRuleFields   = 64
	contidValueSize = 8
)

// Load reads and parses an audit.rules file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading audit rules: %w", err)
	}
	return Parse(b, path)
}

// Parse parses audit.rules text. Every bad line is reported, as a
// *fileerr.Error (FILE:LINE:COL: message), joined in one error.
func Parse(src []byte, file string) (*File, error) {
	kf := &File{}
	errs := fileerr.List{File: file}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		line := strings.TrimSpace(text)
		if line == "" || line[0] == '#' {
			continue
		}
		col := strings.Index(text, line) + 1
		if err := kf.parseLine(line, n); err != nil {
			errs.AtPos(n, col, "%s", err)
		}
	}
	if err := sc.Err(); err != nil {
		errs.Add(fmt.Errorf("%s: %w", file, err))
	}
	return kf, errs.Err()
}

func (kf *File) parseLine(line string, n int) error {
	fields := strings.Fields(line)
	set := func(dst **uint32, max uint32) error {
		if len(fields) != 2 {
			return fmt.Errorf("%s takes exactly one number", fields[0])
		}
		v, err := strconv.ParseUint(fields[1], 10, 32)
		if err != nil || uint32(v) > max {
			return fmt.Errorf("%s: %q is not a number from 0 to %d", fields[0], fields[1], max)
		}
		u := uint32(v)
		*dst = &u
		return nil
	}
	switch fields[0] {
	case "-b":
		return set(&kf.BacklogLimit, 1<<31-1)
	case "-f":
		return set(&kf.Failure, 2)
	case "-r":
		return set(&kf.RateLimit, 1<<31-1)
	case "--backlog_wait_time":
		return set(&kf.BacklogWaitTime, 600000)
	case "-e":
		return set(&kf.Enabled, 2)
	case "-i", "-c":
		kf.IgnoreErrors = true
		return nil
	case "-D":
		if len(fields) > 1 {
			return errors.New("-D with a key is not supported: -D deletes every rule")
		}
		kf.DeleteAll = true
		return nil
	case "-a", "-A", "-w":
		wire, err := Build(line)
		if err != nil {
			return err
		}
		kf.Rules = append(kf.Rules, Rule{Wire: wire, Line: n, Text: line})
		return nil
	}
	return fmt.Errorf("%s is not supported in an audit.rules file here (supported: -a -A -w -D -b -f -r -e -i -c --backlog_wait_time)", fields[0])
}

// Build turns one -a/-A/-w rule in auditctl syntax into the kernel's wire
// format. A "-F contid=N" or "-F contid!=N" field, which go-libaudit does
// not know, is appended as the AUDIT_CONTID field.
func Build(line string) ([]byte, error) {
	rest, contids, err := splitContid(line)
	if err != nil {
		return nil, err
	}
	r, err := flags.Parse(rest)
	if err != nil {
		return nil, err
	}
	wire, err := rule.Build(r)
	if err != nil {
		return nil, err
	}
	for _, c := range contids {
		if wire, err = AppendContID(wire, c.id, c.not); err != nil {
			return nil, err
		}
	}
	return wire, nil
}

type contidField struct {
	id  uint64
	not bool
}

// splitContid removes "-F contid=N" fields from an auditctl line.
func splitContid(line string) (string, []contidField, error) {
	f := strings.Fields(line)
	var out []string
	var ids []contidField
	for i := 0; i < len(f); i++ {
		if f[i] == "-F" && i+1 < len(f) && strings.HasPrefix(f[i+1], "contid") {
			v, not := strings.CutPrefix(f[i+1], "contid!=")
			if !not {
				var ok bool
				if v, ok = strings.CutPrefix(f[i+1], "contid="); !ok {
					return "", nil, fmt.Errorf("%s: contid takes = or != only", f[i+1])
				}
			}
			id, err := strconv.ParseUint(v, 10, 64)
			if err != nil || id == 1<<64-1 {
				return "", nil, fmt.Errorf("%s: %q is not a container id (a decimal u64, not the unset value)", f[i+1], v)
			}
			ids = append(ids, contidField{id, not})
			i++
			continue
		}
		out = append(out, f[i])
	}
	return strings.Join(out, " "), ids, nil
}

// AppendContID adds an AUDIT_CONTID field (= or != id) to a rule in wire
// format. The value travels in the rule's string buffer as a native-endian
// u64, with the field's value giving its length (8), as the container-ID
// patches expect.
func AppendContID(wire []byte, id uint64, not bool) ([]byte, error) {
	if len(wire) < ruleHeaderSize {
		return nil, errors.New("rule in wire format is too short")
	}
	ne := binary.NativeEndian
	n := ne.Uint32(wire[fieldCountOff:])
	if n >= maxRuleFields {
		return nil, errors.New("rule already has the maximum of 64 fields")
	}
	buflen := ne.Uint32(wire[bufLenOff:])
	if int(ruleHeaderSize+buflen) > len(wire) {
		return nil, errors.New("rule in wire format has a bad buffer length")
	}
	out := make([]byte, ruleHeaderSize, ruleHeaderSize+buflen+contidValueSize+4)
	copy(out, wire[:ruleHeaderSize])
	out = append(out, wire[ruleHeaderSize:ruleHeaderSize+buflen]...)
	out = ne.AppendUint64(out, id)
	op := uint32(opEqual)
	if not {
		op = opNotEqual
	}
	ne.PutUint32(out[fieldsOff+4*n:], FieldContID)
	ne.PutUint32(out[valuesOff+4*n:], contidValueSize)
	ne.PutUint32(out[fieldFlagsOff+4*n:], op)
	ne.PutUint32(out[fieldCountOff:], n+1)
	ne.PutUint32(out[bufLenOff:], buflen+contidValueSize)
	for len(out)%4 != 0 {
		out = append(out, 0)
	}
	return out, nil
}
