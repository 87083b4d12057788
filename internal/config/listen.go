package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Listen configures listener mode: auditd-ns receives records over auditd's
// remote-logging protocol (from audisp-remote or an upstream auditd-ns).
//
// Peers are known only by their address: without TLS nothing authenticates
// them, and any process that can connect from an allowed network can write
// records into this daemon's log.
type Listen struct {
	Address        string // address: HOST:PORT to listen on
	MaxConnections int    // max_connections (default 64)
	MaxFrame       int    // max_frame: largest payload accepted (default 8970)
	// Allow is allow: the peer networks accepted. A missing allow key means
	// loopback only; an empty list (allow: []) refuses every peer; any
	// address is 0.0.0.0/0 and ::/0, written out.
	Allow []netip.Prefix
	// FrameTimeout is frame_timeout: a frame must arrive whole within this
	// long of its first byte (default 30s).
	FrameTimeout time.Duration
	// IdleTimeout is idle_timeout: a peer silent this long between frames
	// is disconnected (default 10m; 0 means never).
	IdleTimeout time.Duration
	// TLS is tls: {cert, key, client_ca}; nil means plain TCP.
	TLS *ListenTLS
}

// ListenTLS makes the listener speak TLS and admit only peers whose client
// certificate chains to ClientCA. Paths are PEM files, read at start.
type ListenTLS struct {
	Cert     string // cert: the listener's certificate chain
	Key      string // key: its private key
	ClientCA string // client_ca: the CA certificates that vouch for peers
}

// Loopback reports whether the listen address is on a loopback address
// only (127.0.0.0/8, ::1 or localhost).
func (l *Listen) Loopback() bool {
	host, _, err := net.SplitHostPort(l.Address)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

const listenKeys = "address, max_connections, max_frame, allow, frame_timeout, idle_timeout, tls"

func (p *parser) listen(v *yaml.Node) *Listen {
	l := &Listen{MaxConnections: 64, MaxFrame: 8970, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		FrameTimeout: 30 * time.Second, IdleTimeout: 10 * time.Minute}
	if v.Kind != yaml.MappingNode {
		p.fail(v, "listen is a mapping: {address: HOST:PORT, max_connections: N, max_frame: N, allow: [CIDR, ...], frame_timeout: D, idle_timeout: D, tls: {cert: F, key: F, client_ca: F}}")
		return l
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		switch k.Value {
		case "address":
			if _, port, err := net.SplitHostPort(val.Value); err != nil || port == "" {
				p.fail(val, "listen.address %q is not HOST:PORT", val.Value)
			}
			l.Address = val.Value
		case "max_connections", "max_frame":
			n, err := strconv.Atoi(val.Value)
			if err != nil || n < 1 || (k.Value == "max_frame" && n > 65535) {
				p.fail(val, "listen.%s %q is not a positive number (max_frame at most 65535)", k.Value, val.Value)
			} else if k.Value == "max_frame" {
				l.MaxFrame = n
			} else {
				l.MaxConnections = n
			}
		case "allow":
			l.Allow = p.allow(val)
		case "frame_timeout":
			d, err := time.ParseDuration(val.Value)
			if err != nil || d < 100*time.Millisecond || d > time.Hour {
				p.fail(val, "listen.frame_timeout %q is not a duration from 100ms to 1h (like 30s)", val.Value)
			}
			l.FrameTimeout = d
		case "idle_timeout":
			d, err := time.ParseDuration(val.Value)
			if val.Value == "0" {
				d, err = 0, nil
			}
			if err != nil || d < 0 || (d > 0 && d < time.Second) {
				p.fail(val, "listen.idle_timeout %q is not 0 (never) or a duration of at least 1s (like 10m)", val.Value)
			}
			l.IdleTimeout = d
		case "tls":
			l.TLS = p.listenTLS(val)
		default:
			p.fail(k, "unknown listen key %q (known: %s)", k.Value, listenKeys)
		}
	}
	if l.Address == "" {
		p.fail(v, "listen.address is missing")
	}
	return l
}

// allow parses the allow list; an empty list stays empty (refuse all).
func (p *parser) allow(val *yaml.Node) []netip.Prefix {
	out := []netip.Prefix{}
	if val.Kind != yaml.SequenceNode {
		p.fail(val, "listen.allow is a list of networks like 127.0.0.0/8 ([] refuses every peer)")
		return out
	}
	for _, n := range val.Content {
		pf, err := netip.ParsePrefix(n.Value)
		if err != nil {
			p.fail(n, "listen.allow: %q is not a network like 10.0.0.0/8", n.Value)
			continue
		}
		out = append(out, pf.Masked())
	}
	return out
}

func (p *parser) listenTLS(v *yaml.Node) *ListenTLS {
	t := &ListenTLS{}
	if v.Kind != yaml.MappingNode {
		p.fail(v, "listen.tls is a mapping: {cert: FILE, key: FILE, client_ca: FILE}")
		return t
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		switch k.Value {
		case "cert":
			t.Cert = val.Value
		case "key":
			t.Key = val.Value
		case "client_ca":
			t.ClientCA = val.Value
		default:
			p.fail(k, "unknown listen.tls key %q (known: cert, key, client_ca)", k.Value)
		}
	}
	for _, m := range []struct{ name, val string }{{"cert", t.Cert}, {"key", t.Key}, {"client_ca", t.ClientCA}} {
		if m.val == "" {
			p.fail(v, "listen.tls.%s is missing (peers are admitted only with a client certificate from client_ca)", m.name)
		}
	}
	return t
}

// resolve makes the TLS paths absolute, relative to dir.
func (l *Listen) resolve(dir string) {
	if l == nil || l.TLS == nil {
		return
	}
	for _, s := range []*string{&l.TLS.Cert, &l.TLS.Key, &l.TLS.ClientCA} {
		if *s != "" && !filepath.IsAbs(*s) {
			*s = filepath.Join(dir, *s)
		}
	}
}
