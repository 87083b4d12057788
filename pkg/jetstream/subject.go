package jetstream

import (
	"fmt"
	"strings"
)

// Subject prefixes.
const (
	HostPrefix   = "audit.host."
	TenantPrefix = "audit.tenant."
)

// maxToken bounds a host or tenant name made into a subject token.
const maxToken = 128

// Token turns a host or tenant name into one subject token. Dots, which
// would split the token (host.example.com), become underscores; letters,
// digits, '-' and '_' are kept; anything else (spaces, control bytes,
// NATS wildcards '*' and '>', '$', non-ASCII) makes the name refused, with
// an error naming what and where, rather than changed into a name that
// might be another's. what says which name it is ("host", "tenant").
func Token(what, name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%s name is empty", what)
	case len(name) > maxToken:
		return "", fmt.Errorf("%s name is %d bytes long; at most %d make a subject token", what, len(name), maxToken)
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		case c == '.':
			if i == 0 || i == len(name)-1 || name[i-1] == '.' {
				return "", fmt.Errorf("%s name %q: a dot at byte %d leaves an empty label", what, name, i)
			}
			b.WriteByte('_')
		default:
			return "", fmt.Errorf("%s name %q: byte %d (%q) cannot be in a subject token; use letters, digits, '-', '_' and '.'", what, name, i, c)
		}
	}
	return b.String(), nil
}

// HostSubject is the subject of a host's complete log: audit.host.HOST.
func HostSubject(host string) (string, error) {
	h, err := Token("host", host)
	if err != nil {
		return "", err
	}
	return HostPrefix + h, nil
}

// TenantSubject is the subject of a tenant's copies from one host:
// audit.tenant.TENANT.HOST.
func TenantSubject(tenant, host string) (string, error) {
	t, err := Token("tenant", tenant)
	if err != nil {
		return "", err
	}
	h, err := Token("host", host)
	if err != nil {
		return "", err
	}
	return TenantPrefix + t + "." + h, nil
}

// TenantFilter is the subject filter that matches a tenant's copies from
// every host: audit.tenant.TENANT.>.
func TenantFilter(tenant string) (string, error) {
	t, err := Token("tenant", tenant)
	if err != nil {
		return "", err
	}
	return TenantPrefix + t + ".>", nil
}

// CheckSubject checks a subject to publish on: dot-separated tokens, none
// empty, no wildcard, no whitespace or control byte, printable ASCII only.
func CheckSubject(s string) error {
	return checkSubject(s, false)
}

// CheckFilter checks a subject filter to consume: as CheckSubject, but a
// token may be the wildcard '*', and the last one '>'.
func CheckFilter(s string) error {
	return checkSubject(s, true)
}

func checkSubject(s string, wild bool) error {
	if s == "" {
		return fmt.Errorf("subject is empty")
	}
	if len(s) > 512 {
		return fmt.Errorf("subject is %d bytes long; at most 512", len(s))
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("subject %q: token %d is empty", s, i+1)
		case t == "*" || t == ">":
			if !wild {
				return fmt.Errorf("subject %q: wildcard %q in token %d; a publisher needs a literal subject", s, t, i+1)
			}
			if t == ">" && i != len(toks)-1 {
				return fmt.Errorf("subject %q: '>' must be the last token", s)
			}
			continue
		}
		for j := 0; j < len(t); j++ {
			c := t[j]
			if c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				return fmt.Errorf("subject %q: byte %q in token %d is not allowed", s, c, i+1)
			}
		}
	}
	return nil
}

// hostOf returns the last token of a subject, the host in both
// audit.host.HOST and audit.tenant.TENANT.HOST.
func hostOf(subject string) string {
	return subject[strings.LastIndexByte(subject, '.')+1:]
}

// CheckName checks a stream's or a durable consumer's name: letters,
// digits, '-' and '_' only (no dot: the name is one token of the API's
// subjects).
func CheckName(what, name string) error {
	if t, err := Token(what, name); err != nil || t != name {
		return fmt.Errorf("%s %q: use letters, digits, '-' and '_' only", what, name)
	}
	return nil
}
