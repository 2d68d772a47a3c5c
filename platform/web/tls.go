package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// TLS are the certificate settings of a Steward process: its listeners
// serve HTTPS when CertFile and KeyFile are set, and its own clients trust
// CAFile. Every process's settings embed them beside Limits.
type TLS struct {
	CertFile string `envconfig:"TLS_CERT_FILE" desc:"PEM certificate (chain) every listener serves HTTPS with; re-read when the file changes (empty: plain HTTP)"`
	KeyFile  string `envconfig:"TLS_KEY_FILE" desc:"PEM private key of STEWARD_TLS_CERT_FILE"`
	// ClientCAFile turns on mutual TLS: a client without a certificate
	// issued by one of these CAs is refused during the handshake.
	ClientCAFile string `envconfig:"TLS_CLIENT_CA_FILE" desc:"PEM CA bundle; when set, every listener requires a client certificate issued by one of them"`
	// CAFile is what Steward's own HTTP clients trust beyond the system
	// roots (ClientConfig).
	CAFile string `envconfig:"TLS_CA_FILE" desc:"PEM CA bundle Steward's own HTTP clients trust besides the system roots"`
}

// Scheme is the scheme of URLs that reach a listener serving with t:
// "https" when t names a certificate, else "http". A process advertises
// its listeners with it (self-registration, `steward dev`'s banner).
func (t TLS) Scheme() string {
	if t.CertFile != "" {
		return "https"
	}
	return "http"
}

// certCheckEvery is how often, at most, a handshake looks whether the
// certificate files changed: a stat of two files every few seconds costs
// nothing, and a renewed certificate is served within that long.
const certCheckEvery = 2 * time.Second

// ServerConfig returns the TLS configuration of a listener: TLS 1.2 at
// least, the certificate of CertFile and KeyFile, re-read when either
// file's modification time or size changes (checked on a handshake at
// most every two seconds), and client certificates required and verified
// against ClientCAFile when it is set. It returns nil, nil when no
// certificate is set: the listener serves plain HTTP.
//
// It offers only HTTP/1.1: Serve reads the HTTP/1.1 framing of every
// request to refuse ambiguous ones (see framedConn), which HTTP/2 would
// bypass.
func (t TLS) ServerConfig(logger *slog.Logger) (*tls.Config, error) {
	if t.CertFile == "" && t.KeyFile == "" {
		if t.ClientCAFile != "" {
			return nil, errors.New("STEWARD_TLS_CLIENT_CA_FILE needs STEWARD_TLS_CERT_FILE and STEWARD_TLS_KEY_FILE")
		}
		return nil, nil
	}
	certs, err := t.reloader(logger)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.current(), nil },
		NextProtos:     []string{"http/1.1"},
	}
	if t.ClientCAFile != "" {
		if cfg.ClientCAs, err = loadPool(nil, t.ClientCAFile, "STEWARD_TLS_CLIENT_CA_FILE"); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig returns the TLS configuration of Steward's own clients:
// TLS 1.2 at least, trusting the system roots and CAFile. When the
// process has a certificate of its own (CertFile, KeyFile), it presents it
// to servers that ask for one, re-read as ServerConfig re-reads it, so
// that Steward's processes can call each other when they require client
// certificates (the certificate then needs the clientAuth extended key
// usage as well as serverAuth).
func (t TLS) ClientConfig(logger *slog.Logger) (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		if cfg.RootCAs, err = loadPool(roots, t.CAFile, "STEWARD_TLS_CA_FILE"); err != nil {
			return nil, err
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		certs, err := t.reloader(logger)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return certs.current(), nil }
	}
	return cfg, nil
}

// Transport returns a clone of http.DefaultTransport with ClientConfig.
func (t TLS) Transport(logger *slog.Logger) (*http.Transport, error) {
	cfg, err := t.ClientConfig(logger)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return tr, nil
}

// HTTPClient returns a client with Transport and the given timeout (0:
// none). It is how a Steward process builds its client of the other
// Steward services, so that every such call trusts CAFile and presents
// the process's certificate to listeners that require one.
func (t TLS) HTTPClient(timeout time.Duration, logger *slog.Logger) (*http.Client, error) {
	tr, err := t.Transport(logger)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// ServeTLS is Serve over TLS when t names a certificate (ServerConfig),
// else plain Serve.
func ServeTLS(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, drain time.Duration, limits Limits, t TLS, opts ...ServeOption) error {
	cfg, err := t.ServerConfig(logger)
	if err != nil {
		return err
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
		logger.Info("serving HTTPS", "addr", ln.Addr().String(), "cert", t.CertFile, "client_ca", t.ClientCAFile)
	}
	return serve(ctx, ln, h, logger, drain, limits, opts)
}

// withTLSState sets Request.TLS on the requests net/http serves over TLS.
// net/http sets it only when the connection has a ConnectionState method
// itself (a *tls.Conn, or a connection h1server handed off from one), and
// Serve wraps every connection it gives net/http in a framedConn: the
// framing check must read the decrypted bytes, so the TLS connection is
// inside it. The requests h1server serves itself carry it already.
func withTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey).(*framedConn); ok && r.TLS == nil {
			if cs, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
				st := cs.ConnectionState()
				r = r.WithContext(r.Context())
				r.TLS = &st
			}
		}
		h.ServeHTTP(w, r)
	})
}

// loadPool adds the PEM certificates of file to pool (a new pool when
// nil); setting names the variable in errors.
func loadPool(pool *x509.CertPool, file, setting string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	if pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in %s", setting, file)
	}
	return pool, nil
}

// certReloader holds a key pair and re-reads it when its files change.
type certReloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	loaded  fileStamp // the files cert was read from
	failed  fileStamp // the files last found unreadable, warned about once
	checked time.Time
}

// fileStamp tells whether the key pair's files changed: their
// modification times and sizes, or the error that stopped a stat.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
	err               string
}

func (t TLS) reloader(logger *slog.Logger) (*certReloader, error) {
	if t.CertFile == "" || t.KeyFile == "" {
		return nil, errors.New("STEWARD_TLS_CERT_FILE and STEWARD_TLS_KEY_FILE go together: set both or neither")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &certReloader{certFile: t.CertFile, keyFile: t.KeyFile, logger: logger}
	r.loaded = r.stamp()
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("STEWARD_TLS_CERT_FILE, STEWARD_TLS_KEY_FILE: %w", err)
	}
	r.cert, r.checked = &cert, time.Now()
	return r, nil
}

func (r *certReloader) stamp() fileStamp {
	var s fileStamp
	ci, err := os.Stat(r.certFile)
	if err == nil {
		var ki os.FileInfo
		if ki, err = os.Stat(r.keyFile); err == nil {
			return fileStamp{certMod: ci.ModTime(), certSize: ci.Size(), keyMod: ki.ModTime(), keySize: ki.Size()}
		}
	}
	s.err = err.Error()
	return s
}

// current returns the key pair, first re-reading it if its files changed
// since it was read and the last look was long enough ago. A pair that
// cannot be read (a file half written, a key that does not match) leaves
// the one served before in place, with one warning until the files change
// again.
func (r *certReloader) current() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) < certCheckEvery {
		return r.cert
	}
	r.checked = time.Now()
	st := r.stamp()
	if st == r.loaded || st == r.failed {
		return r.cert
	}
	err := errors.New(st.err)
	if st.err == "" {
		var cert tls.Certificate
		if cert, err = tls.LoadX509KeyPair(r.certFile, r.keyFile); err == nil {
			r.cert, r.loaded, r.failed = &cert, st, fileStamp{}
			if cert.Leaf != nil {
				r.logger.Info("TLS certificate reloaded", "cert", r.certFile, "serial", cert.Leaf.SerialNumber.String(), "not_after", cert.Leaf.NotAfter)
			}
			return r.cert
		}
	}
	r.failed = st
	r.logger.Warn("TLS certificate not reloaded; serving the previous one", "cert", r.certFile, "key", r.keyFile, "err", err)
	return r.cert
}
