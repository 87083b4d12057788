package view_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/view"
)

// shifted is a Namespaces made of fuzz inputs: every id moves by a shift,
// every pid by another, and pids at or under a limit are not visible.
type shifted struct{ pid, uid, gid, hide uint32 }

func (s shifted) Pid(p uint32, _ int64) uint32 {
	if p <= s.hide {
		return 0
	}
	return p + s.pid
}
func (s shifted) UID(id uint32) uint32 { return id + s.uid }
func (s shifted) GID(id uint32) uint32 { return id + s.gid }

// FuzzRewrite: in the host view a record comes out unchanged; in any view
// it keeps its fields in order, changes only the values of id fields, to
// decimal numbers, and never touches what follows a user message's msg='.
// Without -fuzz only the seeds run.
func FuzzRewrite(f *testing.F) {
	for _, c := range rewriteCases {
		f.Add(c.typ, []byte(c.in), uint32(3), uint32(100), uint32(7), uint32(4999))
	}
	f.Add(uint16(1100), []byte(`audit(1.000:1): pid=1 uid=0 msg='pid=1 uid=0'`), uint32(1), uint32(1), uint32(1), uint32(0))
	f.Add(uint16(1318), []byte(`audit(1.000:1): opid=-1 ouid=-2147483648 oses=-0`), uint32(1), uint32(1<<31), uint32(1), uint32(0))
	f.Add(uint16(1325), []byte(`table= pid=`), uint32(1), uint32(1), uint32(1), uint32(0))
	f.Fuzz(func(t *testing.T, typ uint16, data []byte, pid, uid, gid, hide uint32) {
		if got := view.Rewrite(nil, typ, data, view.Host, 0, nil); !bytes.Equal(got, data) {
			t.Fatalf("host view changed\n%q\ninto\n%q", data, got)
		}
		ns := shifted{pid, uid, gid, hide}
		got := view.Rewrite([]byte("prefix"), typ, data, ns, 0, view.NewSessions(2))
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("dst's bytes not kept: %q", got)
		}
		if err := sameShape(typ, data, got[len("prefix"):]); err != "" {
			t.Fatalf("%s\n%q\ninto\n%q", err, data, got)
		}
	})
}

// sameShape says how out is not in with id values changed ("" if it is).
func sameShape(typ uint16, in, out []byte) string {
	if typ == 1325 { // NETFILTER_CFG: only the last pid= (see the package doc)
		i := bytes.LastIndex(in, []byte(" pid="))
		if i < 0 {
			if !bytes.Equal(in, out) {
				return "NETFILTER_CFG without pid= changed"
			}
			return ""
		}
		i += len(" pid=")
		end := i + bytes.IndexByte(append(in[i:len(in):len(in)], ' '), ' ')
		j := len(out) - (len(in) - end)
		if j < i || !bytes.Equal(in[:i], out[:i]) || !bytes.Equal(in[end:], out[j:]) {
			return "NETFILTER_CFG changed outside its last pid="
		}
		return ""
	}
	for f := record.NewFields(in); typ != 1325 && f.Next(); {
		if v := f.Value(); string(f.Name()) == "msg" && len(v) > 0 && v[0] == '\'' {
			if !bytes.HasSuffix(out, in[f.Offset():]) {
				return fmt.Sprintf("user text after byte %d changed", f.Offset())
			}
			break
		}
	}
	a, b := record.NewFields(in), record.NewFields(out)
	for {
		na, nb := a.Next(), b.Next()
		if na != nb {
			return "a different number of fields"
		}
		if !na {
			break
		}
		if !bytes.Equal(a.Name(), b.Name()) {
			return fmt.Sprintf("field %q became %q", a.Name(), b.Name())
		}
		va, vb := a.Value(), b.Value()
		if bytes.Equal(va, vb) {
			continue
		}
		if !idName(a.Name()) && !(typ == 1305 && string(a.Name()) == "old") {
			return fmt.Sprintf("field %s=%s, not an id, became %s", a.Name(), va, vb)
		}
		for i, c := range vb {
			if (c < '0' || c > '9') && !(c == '-' && i == 0) {
				return fmt.Sprintf("id %s=%s became %q", a.Name(), va, vb)
			}
		}
	}
	// Around the values, every byte is kept.
	if strip(in) != strip(out) {
		return "bytes outside id values changed"
	}
	return ""
}

func idName(n []byte) bool {
	switch string(n) {
	case "pid", "ppid", "opid", "audit_pid", "uid", "euid", "suid", "fsuid", "auid", "ouid", "oauid", "old-auid",
		"frootid", "cap_frootid", "gid", "egid", "sgid", "fsgid", "ogid", "ses", "old-ses", "oses":
		return true
	}
	return false
}

// strip is b with every run of digits and minus signs cut to one '#'.
func strip(b []byte) string {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] >= '0' && b[i] <= '9' || b[i] == '-' {
			out = append(out, '#')
			for i+1 < len(b) && (b[i+1] >= '0' && b[i+1] <= '9' || b[i+1] == '-') {
				i++
			}
			continue
		}
		out = append(out, b[i])
	}
	return string(out)
}
