// Package health runs the registry's active checks: it decides which
// replica probes which instance (Presence, Owner), probes over HTTP and TCP
// (Prober), and proposes status changes, never plain probe results, to the
// log (Checker).
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/stewardhq/steward/services/registry/catalog"
)

// Prober runs one probe of a check.
type Prober struct {
	client  *http.Client
	dialer  *net.Dialer
	replica string
}

// errLocal refuses a connection to a local or metadata address.
var errLocal = errors.New("refusing to probe a loopback, link-local or metadata address (STEWARD_REGISTRY_ALLOW_LOCAL is off)")

// NewProber returns a prober. Unless allowLocal, it refuses to connect to
// local and metadata addresses at dial time, after DNS resolution and on
// every redirect, so neither a registration nor a DNS answer can point the
// registry's probes at its own host.
// Probes carry the replica's ID in X-Steward-Checker, so a target's logs
// show which replica checks it.
func NewProber(allowLocal bool, replicaID string) *Prober {
	d := &net.Dialer{Control: func(_, address string, _ syscall.RawConn) error {
		if allowLocal {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if catalog.LocalAddr(ap.Addr()) {
			return errLocal
		}
		return nil
	}}
	tr := &http.Transport{
		DialContext: d.DialContext,
		// Each probe opens its own connection, as a client would: a
		// pooled connection could pass a check the listener would fail.
		DisableKeepAlives:     true,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 0, // the probe's context bounds it
	}
	return &Prober{client: &http.Client{Transport: tr}, dialer: d, replica: replicaID}
}

// Probe runs c once within its timeout.
func (p *Prober) Probe(ctx context.Context, c catalog.Check) catalog.Report {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout.Std())
	defer cancel()
	if c.HTTP != "" {
		return p.probeHTTP(ctx, c.HTTP)
	}
	conn, err := p.dialer.DialContext(ctx, "tcp", c.TCP)
	if err != nil {
		return catalog.Report{Status: catalog.Critical, Output: fmt.Sprintf("TCP connect %s: %v", c.TCP, err)}
	}
	_ = conn.Close()
	return catalog.Report{Status: catalog.Passing, Output: fmt.Sprintf("TCP connect %s: success", c.TCP)}
}

// probeHTTP maps the answer as Consul does: 2xx passing, 429 warning,
// anything else or no answer critical.
func (p *Prober) probeHTTP(ctx context.Context, url string) catalog.Report {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return catalog.Report{Status: catalog.Critical, Output: err.Error()}
	}
	req.Header.Set("User-Agent", "steward-registry-health-check")
	req.Header.Set("X-Steward-Checker", p.replica)
	resp, err := p.client.Do(req)
	if err != nil {
		return catalog.Report{Status: catalog.Critical, Output: fmt.Sprintf("HTTP GET %s: %v", url, err)}
	}
	_ = resp.Body.Close()
	out := fmt.Sprintf("HTTP GET %s: %s", url, resp.Status)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return catalog.Report{Status: catalog.Passing, Output: out}
	case resp.StatusCode == http.StatusTooManyRequests:
		return catalog.Report{Status: catalog.Warning, Output: out}
	}
	return catalog.Report{Status: catalog.Critical, Output: out}
}
