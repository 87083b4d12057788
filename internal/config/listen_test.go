package config_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/config"
)

func TestListen(t *testing.T) {
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		name, src string
		check     func(*config.Listen) bool
	}{
		{"defaults", "{address: 127.0.0.1:60}", func(l *config.Listen) bool {
			return slices.Equal(l.Allow, loop) && l.FrameTimeout == 30*time.Second && l.IdleTimeout == 10*time.Minute && l.TLS == nil && l.Loopback()
		}},
		{"empty allow refuses all", "{address: 0.0.0.0:60, allow: []}", func(l *config.Listen) bool {
			return l.Allow != nil && len(l.Allow) == 0 && !l.Loopback()
		}},
		{"timeouts", "{address: '[::1]:60', frame_timeout: 2s, idle_timeout: 0}", func(l *config.Listen) bool {
			return l.FrameTimeout == 2*time.Second && l.IdleTimeout == 0 && l.Loopback()
		}},
		{"tls relative to the file", "{address: 10.0.0.1:60, tls: {cert: c.pem, key: k.pem, client_ca: /ca.pem}}", func(l *config.Listen) bool {
			return l.TLS != nil && l.TLS.Cert == "/etc/x/c.pem" && l.TLS.Key == "/etc/x/k.pem" && l.TLS.ClientCA == "/ca.pem"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse([]byte("local_events: no\nlisten: "+tc.src+"\n"), "/etc/x/auditd-ns.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c.Listen) {
				t.Errorf("parsed as %+v (tls %+v)", c.Listen, c.Listen.TLS)
			}
		})
	}
}

func TestListenErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"{address: x:1, tls: {cert: c, key: k}}", "f.yaml:2:29: listen.tls.client_ca is missing"},
		{"{address: x:1, tls: {cert: c, key: k, client_ca: a, ca: b}}", "f.yaml:2:61: unknown listen.tls key \"ca\""},
		{"{address: x:1, frame_timeout: 1ms}", "f.yaml:2:39: listen.frame_timeout \"1ms\""},
		{"{address: x:1, idle_timeout: -1s}", "f.yaml:2:38: listen.idle_timeout \"-1s\""},
		{"{address: x:1, allow: 10.0.0.0/8}", "f.yaml:2:31: listen.allow is a list"},
		{"{address: x:1, tls: yes}", "f.yaml:2:29: listen.tls is a mapping"},
	} {
		_, err := config.Parse([]byte("local_events: no\nlisten: "+tc.src+"\n"), "f.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("listen: %s\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
}
