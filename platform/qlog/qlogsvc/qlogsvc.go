// Package qlogsvc is the process side every service built on qlog shares,
// as qloghttp is the HTTP side: the voter set from STEWARD_VOTERS, the
// snapshot store a replica keeps, and a standalone process's connections
// (NATS, PostgreSQL when configured) and listener.
package qlogsvc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/qlog"
)

// Voters returns the voter set of a STEWARD_VOTERS list (blank entries
// dropped), defaulting to the replica self alone.
func Voters(list []string, self string) []string {
	var out []string
	for _, v := range list {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return []string{self}
	}
	return out
}

// snapshotsKept is how many snapshots a store keeps per service.
const snapshotsKept = 3

// Snapshots returns where a replica of service keeps its snapshots:
// PostgreSQL when pool is set, else the JetStream object store (dev mode's
// zero-dependency choice), with streamReplicas replicas.
func Snapshots(ctx context.Context, nc *nats.Conn, pool *pgxpool.Pool, service string, streamReplicas int) (qlog.SnapshotStore, error) {
	if pool != nil {
		return pgstore.NewSnapshots(pool, snapshotsKept), nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return qlog.NewObjectStoreSnapshots(js, service, streamReplicas, snapshotsKept), nil
}

// Process is what a standalone replica runs on.
type Process struct {
	NC       *nats.Conn
	Pool     *pgxpool.Pool // nil without a database URL
	Listener net.Listener
}

// NATSAuth are the credentials and TLS settings a replica connects to
// NATS with; the zero value connects as NATS's default user over plain
// TCP (or TLS when the URL says tls://). Replicated settings embed them.
type NATSAuth struct {
	// NATSCreds is a decentralized-auth credentials file: the user's JWT
	// and NKey seed, as `nsc generate creds` writes it.
	NATSCreds    string `envconfig:"NATS_CREDS" desc:"NATS credentials file (.creds: user JWT and NKey seed)"`
	NATSUser     string `envconfig:"NATS_USER" desc:"NATS user name (with STEWARD_NATS_PASSWORD)"`
	NATSPassword string `envconfig:"NATS_PASSWORD" desc:"NATS password of STEWARD_NATS_USER"`
	NATSToken    string `envconfig:"NATS_TOKEN" desc:"NATS authentication token"`
	// NATSCAFile, NATSCertFile and NATSKeyFile turn on TLS to NATS: the
	// CAs that issued the server's certificate and, when the server
	// verifies clients, this replica's certificate and key.
	NATSCAFile   string `envconfig:"NATS_CA_FILE" desc:"PEM CA bundle the NATS servers' certificates are checked against (turns on TLS)"`
	NATSCertFile string `envconfig:"NATS_CERT_FILE" desc:"PEM client certificate presented to NATS (with STEWARD_NATS_KEY_FILE)"`
	NATSKeyFile  string `envconfig:"NATS_KEY_FILE" desc:"PEM private key of STEWARD_NATS_CERT_FILE"`
}

// options returns the nats.go options of a, or why a does not make sense:
// one way to authenticate at most, a password with its user, a key with
// its certificate.
func (a NATSAuth) options() ([]nats.Option, error) {
	var opts []nats.Option
	ways := 0
	if a.NATSCreds != "" {
		ways++
		opts = append(opts, nats.UserCredentials(a.NATSCreds))
	}
	if a.NATSUser != "" {
		ways++
		opts = append(opts, nats.UserInfo(a.NATSUser, a.NATSPassword))
	} else if a.NATSPassword != "" {
		return nil, errors.New("STEWARD_NATS_PASSWORD is set without STEWARD_NATS_USER")
	}
	if a.NATSToken != "" {
		ways++
		opts = append(opts, nats.Token(a.NATSToken))
	}
	if ways > 1 {
		return nil, errors.New("set one of STEWARD_NATS_CREDS, STEWARD_NATS_USER or STEWARD_NATS_TOKEN")
	}
	if a.NATSCAFile != "" {
		opts = append(opts, nats.RootCAs(a.NATSCAFile))
	}
	if (a.NATSCertFile == "") != (a.NATSKeyFile == "") {
		return nil, errors.New("STEWARD_NATS_CERT_FILE and STEWARD_NATS_KEY_FILE go together: set both or neither")
	}
	if a.NATSCertFile != "" {
		opts = append(opts, nats.ClientCert(a.NATSCertFile, a.NATSKeyFile))
	}
	return opts, nil
}

// Connect dials NATS at natsURL (comma-separated servers) with auth as a
// replica should: reconnecting forever, so that a NATS restart is a pause
// and not a crash, and pinging every second, so that a server that
// stopped answering without closing the connection (paused, cut off by a
// partition) is left for another within about two seconds instead of
// NATS's default of minutes. NATS not answering yet is waited for in the
// background, as a reconnect is; NATS refusing the credentials or the
// certificates fails at once, since retrying would not change its mind.
func Connect(natsURL, name string, auth NATSAuth) (*nats.Conn, error) {
	authOpts, err := auth.options()
	if err != nil {
		return nil, err
	}
	opts := append([]nats.Option{nats.Name(name),
		nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2)}, authOpts...)
	nc, err := nats.Connect(natsURL, opts...)
	if err != nil && !refused(err) {
		nc, err = nats.Connect(natsURL, append(opts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", natsURL, err)
	}
	return nc, nil
}

// refused tells whether a first connection failed because NATS refused
// this client (credentials, certificates), not because it could not be
// reached.
func refused(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var path *fs.PathError
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired) ||
		errors.Is(err, nats.ErrSecureConnWanted) || errors.Is(err, nats.ErrSecureConnRequired) ||
		errors.As(err, &verify) || errors.As(err, &unknownCA) || errors.As(err, &path) ||
		strings.Contains(err.Error(), "authorization violation")
}

// Start connects to NATS at natsURL with auth, to PostgreSQL when databaseURL is set
// (applying migrations; retried with backoff while the database cannot be
// reached, until ctx ends), and listens on addr. name names the NATS
// connection, e.g. steward-config-config-0.
func Start(ctx context.Context, name, natsURL string, auth NATSAuth, databaseURL, addr string, logger *slog.Logger) (*Process, error) {
	nc, err := Connect(natsURL, name, auth)
	if err != nil {
		return nil, err
	}
	p := &Process{NC: nc}
	if databaseURL != "" {
		backoff := 250 * time.Millisecond
		for attempt := 1; ; attempt++ {
			if p.Pool, err = pgstore.Open(ctx, databaseURL, logger); err == nil {
				break
			}
			if ctx.Err() != nil {
				p.Close()
				return nil, err
			}
			logger.Warn("waiting for PostgreSQL", "attempt", attempt, "retry_in", backoff, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
	var lc net.ListenConfig
	if p.Listener, err = lc.Listen(ctx, "tcp", addr); err != nil {
		p.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return p, nil
}

// Close closes the connections and the listener (which a server may have
// closed already).
func (p *Process) Close() {
	if p.Listener != nil {
		_ = p.Listener.Close()
	}
	if p.Pool != nil {
		p.Pool.Close()
	}
	p.NC.Close()
}
