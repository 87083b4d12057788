package hostlog

import (
	"bytes"
	"os/user"
	"strconv"
	"sync"

	"github.com/elastic/go-libaudit/v2/auparse"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

var (
	uidFields = set("uid", "auid", "euid", "suid", "fsuid", "ouid", "iuid", "obj_uid", "sauid", "inode_uid", "loginuid", "old-auid", "old-loginuid")
	gidFields = set("gid", "egid", "sgid", "fsgid", "ogid", "igid", "obj_gid", "inode_gid", "new_gid", "old_gid")
)

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

type kv struct{ key, val string }

// fieldsOf splits record text into its name=value fields, in order.
func fieldsOf(text []byte) []kv {
	var out []kv
	for i := 0; i < len(text); {
		for i < len(text) && text[i] == ' ' {
			i++
		}
		start := i
		for i < len(text) && text[i] != '=' && text[i] != ' ' {
			i++
		}
		if i >= len(text) || text[i] != '=' {
			continue
		}
		key := string(text[start:i])
		i++
		vstart := i
		if i < len(text) && text[i] == '"' {
			if j := bytes.IndexByte(text[i+1:], '"'); j >= 0 {
				i += j + 2
			}
		}
		for i < len(text) && text[i] != ' ' {
			i++
		}
		out = append(out, kv{key, string(text[vstart:i])})
	}
	return out
}

// appendEnriched appends auditd's ENRICHED part: 0x1d, then the interpreted
// arch, syscall, uid and gid fields in upper case, names quoted. It replaces
// the newline AppendLine wrote and writes its own.
func appendEnriched(dst, data []byte, names *nameCache) []byte {
	var r record.Record
	if record.Parse(&r, 0, data) != nil {
		return dst
	}
	base := len(dst) - 1 // the newline
	out := append(dst[:base], 0x1d)
	n := 0
	add := func(k, v string) {
		if n > 0 {
			out = append(out, ' ')
		}
		out = append(out, k...)
		out = append(out, '=')
		out = append(out, v...)
		n++
	}
	arch := ""
	for _, f := range fieldsOf(r.Text) {
		switch {
		case f.key == "arch":
			if a, err := strconv.ParseUint(f.val, 16, 32); err == nil {
				arch = auparse.AuditArch(a).String()
				add("ARCH", arch)
			}
		case f.key == "syscall" && arch != "":
			if nr, err := strconv.Atoi(f.val); err == nil {
				if name, ok := auparse.AuditSyscalls[arch][nr]; ok {
					add("SYSCALL", name)
				}
			}
		case f.key == "saddr":
			if v, ok := interpretSaddr(f.val); ok {
				add("SADDR", v)
			}
		case uidFields[f.key]:
			add(upper(f.key), `"`+names.user(f.val)+`"`)
		case gidFields[f.key]:
			add(upper(f.key), `"`+names.group(f.val)+`"`)
		}
	}
	if n == 0 {
		return append(out[:base], '\n')
	}
	// Values come from the record's text, where a user message's words
	// are the sender's: none may end the line or start another part.
	replaceBreaks(out[base+1:])
	return append(out, '\n')
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// nameCache remembers user and group names; lookups hit /etc files.
type nameCache struct {
	mu     sync.Mutex // guards the maps
	users  map[string]string
	groups map[string]string
}

func newNameCache() *nameCache {
	return &nameCache{users: map[string]string{}, groups: map[string]string{}}
}

func (c *nameCache) user(id string) string {
	return c.lookup(c.users, id, func(id string) (string, error) {
		u, err := user.LookupId(id)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

func (c *nameCache) group(id string) string {
	return c.lookup(c.groups, id, func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

func (c *nameCache) lookup(m map[string]string, id string, f func(string) (string, error)) string {
	if id == "4294967295" || id == "-1" {
		return "unset"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := m[id]; ok {
		return n
	}
	n, err := f(id)
	if err != nil {
		n = "unknown(" + id + ")"
	}
	if len(m) < 4096 {
		m[id] = n
	}
	return n
}
