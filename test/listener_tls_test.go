package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	return &testCA{cert, key}
}

// issue returns a certificate for 127.0.0.1 signed by ca, as PEM.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	must(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestIntegrationListenerTLS: a listener daemon configured with tls admits
// a peer whose client certificate its client_ca signed and logs its
// record; a peer without a certificate, one with a certificate of another
// CA, and one speaking plain TCP get no ack and their records are not
// logged.
func TestIntegrationListenerTLS(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := newTestCA(t, "peers CA"), newTestCA(t, "rogue CA")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, b, 0o600))
		return p
	}
	scert, skey := ca.issue(t, "listener", x509.ExtKeyUsageServerAuth)
	caFile := write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
	keys := fmt.Sprintf(", tls: {cert: %s, key: %s, client_ca: %s}", write("listener.pem", scert), write("listener-key.pem", skey), caFile)
	addr, log, stderr := listenerDaemon(t, keys)
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(stderr(), "tls=true") }, "the daemon to say it listens with TLS")
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	pair := func(c, k []byte) tls.Certificate {
		p, err := tls.X509KeyPair(c, k)
		must(t, err)
		return p
	}
	send := func(name string, c net.Conn) bool {
		c.Write(rlFrame(0, 1, "type=USER msg=audit(1700000000.001:1): pid=1 uid=0 auid=0 ses=1 msg='op="+name+"'"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var hdr [16]byte
		_, err := c.Read(hdr[:])
		return err == nil
	}
	dial := func(certs ...tls.Certificate) net.Conn {
		cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
		if len(certs) > 0 { // sent whatever CAs the listener names
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return nil // refused during the handshake
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if c := dial(pair(ca.issue(t, "peer", x509.ExtKeyUsageClientAuth))); c == nil || !send("trusted-peer", c) {
		t.Fatal("the peer with a certificate from client_ca was not served")
	}
	plain, err := net.Dial("tcp", addr)
	must(t, err)
	defer plain.Close()
	for name, c := range map[string]net.Conn{"no-cert": dial(), "rogue-cert": dial(pair(rogue.issue(t, "intruder", x509.ExtKeyUsageClientAuth))), "plain-tcp": plain} {
		if c != nil && send(name, c) {
			t.Errorf("%s: acknowledged", name)
		}
	}
	for _, why := range []string{"didn't provide a certificate", "certificate signed by unknown authority", "does not look like a TLS handshake"} {
		waitFor(t, 5*time.Second, func() bool { return strings.Contains(stderr(), why) }, "the daemon to log a refusal: "+why)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "op=trusted-peer") {
		t.Errorf("the trusted peer's record is not in the log")
	}
	for _, name := range []string{"no-cert", "rogue-cert", "plain-tcp"} {
		if strings.Contains(string(b), "op="+name) {
			t.Errorf("the %s peer's record is in the log", name)
		}
	}
}
