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

// LocalURL is the http:// URL that reaches a listener from the same host:
// its own address when it listens on one, else loopback.
func LocalURL(ln net.Addr) string {
	host, port, _ := net.SplitHostPort(ln.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Replica is a Steward replica announcing itself in the registry.
type Replica struct {
	client       *Client
	service, id  string
	registration catalog.Registration
}

// NewReplica prepares the announcement of replica id of service, listening
// on ln, to the registry at registryURL (see Advertised for advertise).
// Options, if given, adjust the client (its Token).
func NewReplica(registryURL, advertise string, ln net.Addr, service, id string, options ...func(*Client)) (*Replica, error) {
	host, port, err := Advertised(advertise, ln)
	if err != nil {
		return nil, err
	}
	c := &Client{BaseURL: registryURL}
	for _, o := range options {
		o(c)
	}
	return &Replica{client: c, service: service, id: id,
		registration: catalog.Registration{Address: host, Port: port, Metadata: map[string]string{"replica": id}}}, nil
}

// Announce keeps the replica registered until ctx ends (Client.Announce).
func (r *Replica) Announce(ctx context.Context, logger *slog.Logger) {
	r.client.Announce(ctx, r.service, r.id, r.registration, logger)
}

// SelfAnnouncer is NewReplica as the service skeleton's Spec.Announcer.
func SelfAnnouncer(registryURL, advertise string, ln net.Addr, name, id, token string) (service.Announcer, error) {
	return NewReplica(registryURL, advertise, ln, name, id, func(c *Client) { c.Token = token })
}
