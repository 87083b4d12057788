package remote_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// dribble writes b to c one byte every interval until it is written or a
// write fails; it returns at once, writing on a goroutine of its own.
func dribble(c net.Conn, b []byte, interval time.Duration) {
	go func() {
		for i := range b {
			if _, err := c.Write(b[i : i+1]); err != nil {
				return
			}
			time.Sleep(interval)
		}
	}()
}

// A peer that sends a frame one byte at a time, each byte well within the
// frame timeout of the last, is cut when the frame timeout has passed
// since the frame's first byte, and its slot goes to the next peer.
func TestListenerSlowlorisCutAtFrameDeadline(t *testing.T) {
	var s sink
	l := &remote.Listener{Handle: s.handle, MaxConns: 2, FrameTimeout: 300 * time.Millisecond, IdleTimeout: -1}
	addr, logs := startListener(t, l)
	slow := frame(remote.TypeMessage, 1, "type=USER msg=audit(1.000:1): "+strings.Repeat("x", 200))
	start := time.Now()
	var peers []net.Conn
	for range 2 {
		c := rawConn(t, addr)
		dribble(c, slow, 50*time.Millisecond) // a whole frame would take 11s
		peers = append(peers, c)
	}
	for i, c := range peers {
		if !closedByPeer(c, 3*time.Second) {
			t.Fatalf("dribbling peer %d still connected after %v", i, time.Since(start))
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("dribbling peers cut after %v, want about the 300ms frame timeout", d)
	}
	waitFor(t, "the slots to free", 2*time.Second, func() bool { return l.Status().Conns == 0 })
	c := rawConn(t, addr)
	c.Write(frame(remote.TypeHeartbeat, 7, ""))
	if r := readReplies(t, c, 1)[0]; r.Type != remote.TypeAck || r.Seq != 7 {
		t.Errorf("next peer answered with %s %d", r.Type, r.Seq)
	}
	if st := l.Status(); st.BadFrames != 2 || len(s.get()) != 0 {
		t.Errorf("status %+v, handled %d lines; want 2 bad frames, none handled", st, len(s.get()))
	}
	if !strings.Contains(logs.String(), "frame incomplete") {
		t.Errorf("log does not say why the peers were cut:\n%s", logs)
	}
}

// A peer that says nothing for the idle timeout is closed.
func TestListenerIdleTimeout(t *testing.T) {
	var s sink
	l := &remote.Listener{Handle: s.handle, IdleTimeout: 200 * time.Millisecond}
	addr, _ := startListener(t, l)
	c := rawConn(t, addr)
	c.Write(frame(remote.TypeHeartbeat, 1, ""))
	readReplies(t, c, 1)
	start := time.Now()
	if !closedByPeer(c, 3*time.Second) {
		t.Fatal("idle peer left connected")
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("idle peer closed after %v, before the idle timeout", d)
	}
	waitFor(t, "the idle count", time.Second, func() bool { return l.Status().Idle == 1 })
}

// An empty allow list admits no one.
func TestListenerEmptyAllowRefusesAll(t *testing.T) {
	var s sink
	l := &remote.Listener{Handle: s.handle, Allow: []netip.Prefix{}}
	addr, logs := startListener(t, l)
	c := rawConn(t, addr)
	c.Write(frame(remote.TypeMessage, 1, "type=USER msg=audit(1.000:1): a"))
	if !closedByPeer(c, 2*time.Second) {
		t.Fatal("peer admitted by an empty allow list")
	}
	waitFor(t, "the logged reason", 2*time.Second, func() bool { return strings.Contains(logs.String(), "peer address not allowed") })
	if st := l.Status(); st.Accepted != 0 || st.Rejected != 1 || len(s.get()) != 0 {
		t.Errorf("status %+v, handled %q", st, s.get())
	}
}

// A user message's 0x1d and CR never reach Handle; the one separator of a
// well-formed ENRICHED tail does.
func TestListenerReplacesSeparators(t *testing.T) {
	var s sink
	addr, _ := startListener(t, &remote.Listener{Handle: s.handle})
	c := rawConn(t, addr)
	in := []string{
		"type=USER msg=audit(1.000:1): pid=1 uid=0 auid=0 msg='a\x1dAUID=\"forged\" b\rc'",
		"type=USER msg=audit(1.000:2): pid=1 uid=0 auid=0 msg='a\x1dx'\x1dUID=\"root\" AUID=\"root\"",
		"type=SYSCALL msg=audit(1.000:3): arch=c000003e syscall=59 uid=0\x1dARCH=x86_64 SYSCALL=execve UID=\"root\"",
		"type=USER msg=audit(1.000:4): msg='x'\x1dUID=\"root\"\x1d",
	}
	for i, p := range in {
		c.Write(frame(remote.TypeMessage, uint32(i), p))
	}
	readReplies(t, c, len(in))
	want := []string{
		"type=USER msg=audit(1.000:1): pid=1 uid=0 auid=0 msg='a?AUID=\"forged\" b?c'",
		"type=USER msg=audit(1.000:2): pid=1 uid=0 auid=0 msg='a?x'\x1dUID=\"root\" AUID=\"root\"",
		"type=SYSCALL msg=audit(1.000:3): arch=c000003e syscall=59 uid=0\x1dARCH=x86_64 SYSCALL=execve UID=\"root\"",
		"type=USER msg=audit(1.000:4): msg='x'?UID=\"root\"?",
	}
	if got := s.get(); !slices.Equal(got, want) {
		t.Errorf("handled\n%q\nwant\n%q", got, want)
	}
}

// pki is a throwaway CA with a server and client certificates, written as
// PEM files.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
}

func newPKI(t *testing.T, dir, name string) *pki {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{dir: dir, ca: ca, caKey: key, caFile: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", der)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue signs a certificate for name and writes it and its key; it
// returns the two paths and the pair for a tls.Config.
func (p *pki) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pair
}

// A TLS listener serves a peer with a certificate from its client CA and
// refuses one without a certificate, one whose certificate another CA
// signed, and one speaking plain TCP; none of theirs reaches Handle.
func TestListenerTLSClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := newPKI(t, dir, "trusted"), newPKI(t, dir, "rogue")
	cert, key, _ := ca.issue(t, "listener", x509.ExtKeyUsageServerAuth)
	_, _, good := ca.issue(t, "peer", x509.ExtKeyUsageClientAuth)
	_, _, bad := rogue.issue(t, "intruder", x509.ExtKeyUsageClientAuth)
	cfg, err := remote.ServerTLS(cert, key, ca.caFile)
	if err != nil {
		t.Fatal(err)
	}
	var s sink
	l := &remote.Listener{Handle: s.handle, TLS: cfg, FrameTimeout: 2 * time.Second}
	addr, logs := startListener(t, l)
	roots := x509.NewCertPool()
	roots.AddCert(ca.ca)
	dial := func(certs ...tls.Certificate) *tls.Conn {
		cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
		if len(certs) > 0 { // sent whatever CAs the listener names
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return nil // refused in the handshake (TLS 1.2 fails here)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// A peer the client CA vouches for is served.
	c := dial(good)
	if c == nil {
		t.Fatal("handshake with a trusted client certificate failed")
	}
	c.Write(frame(remote.TypeMessage, 1, "type=USER msg=audit(1.000:1): trusted"))
	if r := readReplies(t, c, 1)[0]; r.Type != remote.TypeAck {
		t.Errorf("trusted peer answered with %s", r.Type)
	}
	// The others send a record and must get no ack.
	for name, conn := range map[string]net.Conn{"no certificate": dial(), "rogue CA": dial(bad), "plain TCP": rawConn(t, addr)} {
		if conn == nil {
			continue
		}
		conn.Write(frame(remote.TypeMessage, 2, "type=USER msg=audit(1.000:2): "+name))
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		d := remote.NewDecoder(conn, 0)
		if f, err := d.Decode(); err == nil {
			t.Errorf("%s: answered with %s", name, f.Type)
		}
	}
	waitFor(t, "three refused handshakes", 3*time.Second, func() bool { return l.Status().BadHandshakes == 3 })
	if got := s.get(); !slices.Equal(got, []string{"type=USER msg=audit(1.000:1): trusted"}) {
		t.Errorf("handled %q, want only the trusted peer's record", got)
	}
	if !strings.Contains(logs.String(), "TLS handshake failed") {
		t.Errorf("refusals not logged:\n%s", logs)
	}
}

func TestServerTLSErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newPKI(t, dir, "trusted")
	cert, key, _ := ca.issue(t, "listener", x509.ExtKeyUsageServerAuth)
	notPEM := filepath.Join(dir, "empty.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	for _, tc := range []struct{ cert, key, ca, want string }{
		{filepath.Join(dir, "missing.pem"), key, ca.caFile, "listener's TLS certificate"},
		{cert, key, filepath.Join(dir, "missing.pem"), "TLS client CA"},
		{cert, key, notPEM, "no PEM certificate"},
	} {
		if _, err := remote.ServerTLS(tc.cert, tc.key, tc.ca); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ServerTLS(%s, %s, %s) = %v, want an error about %s", tc.cert, tc.key, tc.ca, err, tc.want)
		}
	}
}
