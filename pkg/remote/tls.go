package remote

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ServerTLS returns the TLS configuration of a listener that proves itself
// with the certificate and key in certFile and keyFile (PEM) and admits
// only peers presenting a client certificate that chains to a CA in
// clientCAFile (PEM, one or more certificates). TLS 1.2 is the oldest
// version accepted. The files are read once, now.
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the listener's TLS certificate: %w", err)
	}
	pem, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("loading the TLS client CA: %s: %w", clientCAFile, errNoPEM)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

var errNoPEM = errors.New("no PEM certificate in the file")
