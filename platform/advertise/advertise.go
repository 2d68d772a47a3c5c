// Package advertise is how a Steward process names its own address and
// keeps itself registered in the registry: the address it registers
// under, the URL that reaches it from the same host, the metadata of its
// registration, and the announcer the service skeleton runs
// (service.Spec.Announcer). The calls go through the Go SDK.
package advertise

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

// Advertised returns the address a process listening on ln registers
// under: advertise (host:port) when set; else the listener's host if it
// is a specific address; else the first non-loopback address of this
// host's interfaces, falling back to loopback.
func Advertised(advertise string, ln net.Addr) (string, int, error) {
	addr := advertise
	if addr == "" {
		addr = ln.String()
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("advertise address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("advertise address %q: bad port", addr)
	}
	if ip, err := netip.ParseAddr(host); host != "" && (err != nil || !ip.IsUnspecified()) {
		return host, port, nil
	}
	return hostAddress(), port, nil
}

func hostAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// LocalAddr is the host:port that reaches a listener from the same host:
// its own address when it listens on one, else loopback.
func LocalAddr(ln net.Addr) string {
	host, port, _ := net.SplitHostPort(ln.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// LocalURL is the base URL, with scheme ("http" or "https", as
// web.TLS.Scheme says), that reaches a listener from the same host
// (LocalAddr).
func LocalURL(scheme string, ln net.Addr) string {
	return scheme + "://" + LocalAddr(ln)
}

// SelfMetadata is the metadata of a Steward process's own registration:
// key and value, and the scheme (sdk.SchemeKey) when it serves HTTPS,
// so that the gateway reaches it over TLS.
func SelfMetadata(scheme, key, value string) map[string]string {
	md := map[string]string{key: value}
	if scheme == "https" {
		md[sdk.SchemeKey] = scheme
	}
	return md
}

// CallTimeout is how long one registry replica is given to answer an
// announcement's call before the next is tried: short enough that a
// heartbeat that meets a hung replica still lands within sdk.AnnounceTTL.
const CallTimeout = 5 * time.Second

// Replica is a Steward replica announcing itself in the registry.
type Replica struct {
	registry     sdk.Services
	service, id  string
	registration api.Registration
}

// SelfAnnouncer prepares the announcement of a replica (the service
// skeleton's Spec.Announcer): it registers a.Service, a.ID at its
// advertised address (see Advertised) with a.Scheme, through a.HTTP.
func SelfAnnouncer(a service.Announcement) (service.Announcer, error) {
	host, port, err := Advertised(a.Advertise, a.Addr)
	if err != nil {
		return nil, err
	}
	c, err := Client(a.RegistryURL, a.HTTP, a.Token)
	if err != nil {
		return nil, err
	}
	md := SelfMetadata(a.Scheme, "replica", a.ID)
	return &Replica{registry: c.Services(), service: a.Service, id: a.ID,
		registration: api.Registration{Address: host, Port: port, Metadata: &md}}, nil
}

// Announce keeps the replica registered until ctx ends (sdk.Services.Announce).
func (r *Replica) Announce(ctx context.Context, logger *slog.Logger) {
	r.registry.Announce(ctx, r.service, r.id, r.registration, sdk.AnnounceOptions{Logger: logger})
}

// Client is an SDK client of a Steward service's replicas (urls, a
// comma-separated list) as a Steward process calls them: through hc (the
// process's client, which trusts STEWARD_TLS_CA_FILE; nil: Go's default),
// with token (STEWARD_AUTH_TOKEN; empty: none), each replica given
// CallTimeout. A call tries each replica once and makes no further
// rounds: every caller (an announcement, a campaign and its renewals, the
// gateway's discovery, the scaler's reconcile) retries on its own
// schedule, and a round's wait for a replica's Retry-After would only
// delay it (a registry starting beside the process answers 503 until it
// is ready, and an announcement retries from 100 ms).
func Client(urls string, hc *http.Client, token string) (*sdk.Client, error) {
	opts := []sdk.Option{sdk.WithTimeout(CallTimeout), sdk.WithRetries(0), sdk.WithUserAgent("steward")}
	if hc != nil {
		opts = append(opts, sdk.WithHTTPClient(hc))
	}
	if token != "" {
		opts = append(opts, sdk.WithToken(token))
	}
	return sdk.New(urls, opts...)
}
