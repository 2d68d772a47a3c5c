package client

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/registry/catalog"
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
// key and value, and the scheme (catalog.SchemeKey) when it serves HTTPS,
// so that the gateway reaches it over TLS.
func SelfMetadata(scheme, key, value string) map[string]string {
	md := map[string]string{key: value}
	if scheme == "https" {
		md[catalog.SchemeKey] = scheme
	}
	return md
}

// Replica is a Steward replica announcing itself in the registry.
type Replica struct {
	client       *Client
	service, id  string
	registration catalog.Registration
}

// SelfAnnouncer prepares the announcement of a replica (the service
// skeleton's Spec.Announcer): it registers a.Service, a.ID at its
// advertised address (see Advertised) with a.Scheme, through a.HTTP.
func SelfAnnouncer(a service.Announcement) (service.Announcer, error) {
	host, port, err := Advertised(a.Advertise, a.Addr)
	if err != nil {
		return nil, err
	}
	return &Replica{client: &Client{BaseURL: a.RegistryURL, HTTP: a.HTTP, Token: a.Token}, service: a.Service, id: a.ID,
		registration: catalog.Registration{Address: host, Port: port, Metadata: SelfMetadata(a.Scheme, "replica", a.ID)}}, nil
}

// Announce keeps the replica registered until ctx ends (Client.Announce).
func (r *Replica) Announce(ctx context.Context, logger *slog.Logger) {
	r.client.Announce(ctx, r.service, r.id, r.registration, logger)
}
