package webtest

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
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throwaway CA that issues certificates into a directory, for
// tests of TLS (web.TLS settings take the files it writes).
type PKI struct {
	t    testing.TB
	dir  string
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// NewPKI makes a CA named name and writes its certificate to
// Path(name+".pem").
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &PKI{t: t, dir: t.TempDir(), key: key, cert: cert}
	WritePEM(t, p.Path(name+".pem"), "CERTIFICATE", der)
	return p
}

// Path is the path of name in the PKI's directory.
func (p *PKI) Path(name string) string { return filepath.Join(p.dir, name) }

// Issue writes name.pem and name-key.pem, a certificate for 127.0.0.1
// good for server and client authentication, and returns their paths.
func (p *PKI) Issue(name string, serial int64) (cert, key string) {
	p.t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &k.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		p.t.Fatal(err)
	}
	cert, key = p.Path(name+".pem"), p.Path(name+"-key.pem")
	WritePEM(p.t, cert, "CERTIFICATE", der)
	WritePEM(p.t, key, "PRIVATE KEY", kder)
	return cert, key
}

// Certificate is Issue's certificate and key, loaded for a tls.Config.
func (p *PKI) Certificate(name string, serial int64) tls.Certificate {
	p.t.Helper()
	c, err := tls.LoadX509KeyPair(p.Issue(name, serial))
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// Pool is a certificate pool of the CA alone, for a tls.Config's RootCAs
// or ClientCAs.
func (p *PKI) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.cert)
	return pool
}

// WritePEM replaces file at once, as a certificate renewal should.
func WritePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}
