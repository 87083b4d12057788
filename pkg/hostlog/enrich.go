package hostlog

import (
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

// appendEnriched appends auditd's ENRICHED part: 0x1d, then the interpreted
// arch, syscall, uid and gid fields in upper case, names quoted. It replaces
// the newline record.AppendLine wrote and writes its own.
func appendEnriched(dst, data []byte, names *nameCache) []byte {
	var r record.Record
	if record.Parse(&r, 0, data) != nil {
		return dst
	}
	base := len(dst) - 1 // the newline
	out := append(dst[:base], record.Separator)
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
	for f := r.Fields(); f.Next(); {
		key, val := f.Name(), string(f.Value())
		switch {
		case string(key) == "arch":
			if a, err := strconv.ParseUint(val, 16, 32); err == nil {
				arch = auparse.AuditArch(a).String()
				add("ARCH", arch)
			}
		case string(key) == "syscall" && arch != "":
			if nr, err := strconv.Atoi(val); err == nil {
				if name, ok := auparse.AuditSyscalls[arch][nr]; ok {
					add("SYSCALL", name)
				}
			}
		case string(key) == "saddr":
			if v, ok := interpretSaddr(val); ok {
				add("SADDR", v)
			}
		case uidFields[string(key)]:
			add(upper(string(key)), `"`+names.user(val)+`"`)
		case gidFields[string(key)]:
			add(upper(string(key)), `"`+names.group(val)+`"`)
		}
	}
	if n == 0 {
		return append(out[:base], '\n')
	}
	// Values come from the record's text, where a user message's words
	// are the sender's: none may end the line or start another part.
	record.ReplaceBreaks(out[base+1:])
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
