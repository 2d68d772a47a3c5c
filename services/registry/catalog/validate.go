package catalog

import (
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stewardhq/steward/platform/fault"
)

// Limits on what a registration may carry, checked before it is proposed.
const (
	MaxIDBytes       = 128
	MaxTags          = 64
	MaxTagBytes      = 128
	MaxMetadata      = 64
	MaxMetaKeyBytes  = 128
	MaxMetaValBytes  = 512
	MaxLabelBytes    = 128 // zone, version
	MaxOutputBytes   = 4 << 10
	MinWeight        = 1
	MaxWeight        = 1000
	MinTTL           = time.Second
	MaxTTL           = 24 * time.Hour
	DefaultInterval  = 10 * time.Second
	MaxLeaseTTL      = time.Hour
	minCheckTimeout  = 100 * time.Millisecond
	defaultTimeout   = 5 * time.Second
	minDeregister    = time.Second
	maxDeregister    = 7 * 24 * time.Hour
	maxAddressLength = 253
)

var (
	serviceName = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)
	instanceID  = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	dnsLabel    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

// ValidateService checks a service name: [a-z0-9-]{1,63}.
func ValidateService(name string) error {
	if !serviceName.MatchString(name) {
		return fault.New(fault.Invalid, "service name %q: want 1 to 63 of a-z, 0-9 and '-'", name)
	}
	return nil
}

// ValidateID checks an instance ID: 1 to 128 of A-Z, a-z, 0-9, '.', '_',
// ':' and '-', so that it is safe in a URL path. That rules out "." and
// "..": URL resolution (RFC 3986 section 5.2.4, as curl and proxies apply
// it) removes them, so /v1/services/web/instances/.. would reach
// /v1/services/web/ instead.
func ValidateID(id string) error {
	if !instanceID.MatchString(id) || id == "." || id == ".." {
		return fault.New(fault.Invalid, "instance id %q: want 1 to %d of A-Z, a-z, 0-9, '.', '_', ':' and '-', other than . and ..", id, MaxIDBytes)
	}
	return nil
}

// Normalize validates r and fills in defaults (weight 1 when absent, check
// interval and timeout). Unless allowLocal, addresses that reach the
// registry's own host or cloud metadata (loopback, link-local,
// unspecified, metadata names) are refused: a check target is a request
// the registry makes.
func (r *Registration) Normalize(allowLocal bool) error {
	if err := validateHost(r.Address, "address", allowLocal); err != nil {
		return err
	}
	if r.Port < 1 || r.Port > 65535 {
		return fault.New(fault.Invalid, "port %d: want 1 to 65535", r.Port)
	}
	if r.Weight == nil {
		r.Weight = new(1)
	}
	if w := *r.Weight; w < MinWeight || w > MaxWeight {
		return fault.New(fault.Invalid, "weight %d: want %d to %d (or none for 1)", w, MinWeight, MaxWeight)
	}
	if len(r.Tags) > MaxTags {
		return fault.New(fault.Invalid, "%d tags: at most %d", len(r.Tags), MaxTags)
	}
	for _, t := range r.Tags {
		if err := validateLabel(t, "tag", MaxTagBytes); err != nil {
			return err
		}
	}
	if len(r.Metadata) > MaxMetadata {
		return fault.New(fault.Invalid, "%d metadata entries: at most %d", len(r.Metadata), MaxMetadata)
	}
	for k, v := range r.Metadata {
		if err := validateLabel(k, "metadata key", MaxMetaKeyBytes); err != nil {
			return err
		}
		if len(v) > MaxMetaValBytes || !utf8.ValidString(v) {
			return fault.New(fault.Invalid, "metadata %q: value must be UTF-8 of at most %d bytes", k, MaxMetaValBytes)
		}
	}
	if r.Zone != "" {
		if err := validateLabel(r.Zone, "zone", MaxLabelBytes); err != nil {
			return err
		}
	}
	if r.Version != "" {
		if err := validateLabel(r.Version, "version", MaxLabelBytes); err != nil {
			return err
		}
	}
	if r.Check != nil {
		return r.Check.normalize(allowLocal)
	}
	return nil
}

func (c *Check) normalize(allowLocal bool) error {
	kinds := 0
	for _, set := range []bool{c.TTL != 0, c.HTTP != "", c.TCP != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return fault.New(fault.Invalid, "check: want exactly one of ttl, http and tcp")
	}
	if c.DeregisterAfter != 0 && (c.DeregisterAfter.Std() < minDeregister || c.DeregisterAfter.Std() > maxDeregister) {
		return fault.New(fault.Invalid, "check.deregisterAfter %s: want %s to %s", c.DeregisterAfter.Std(), minDeregister, maxDeregister)
	}
	if c.TTL != 0 {
		if c.TTL.Std() < MinTTL || c.TTL.Std() > MaxTTL {
			return fault.New(fault.Invalid, "check.ttl %s: want %s to %s", c.TTL.Std(), MinTTL, MaxTTL)
		}
		if c.Interval != 0 || c.Timeout != 0 {
			return fault.New(fault.Invalid, "check: a ttl check takes no interval or timeout")
		}
		return nil
	}
	if c.Interval == 0 {
		c.Interval = Duration(DefaultInterval)
	}
	if c.Interval.Std() < MinTTL || c.Interval.Std() > MaxTTL {
		return fault.New(fault.Invalid, "check.interval %s: want %s to %s", c.Interval.Std(), MinTTL, MaxTTL)
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(min(c.Interval.Std(), defaultTimeout))
	}
	if c.Timeout.Std() < minCheckTimeout || c.Timeout > c.Interval {
		return fault.New(fault.Invalid, "check.timeout %s: want %s up to the interval (%s)", c.Timeout.Std(), minCheckTimeout, c.Interval.Std())
	}
	if c.HTTP != "" {
		u, err := url.Parse(c.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
			return fault.New(fault.Invalid, "check.http %q: want an http:// or https:// URL without credentials", c.HTTP)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fault.New(fault.Invalid, "check.http %q: bad port", c.HTTP)
			}
		}
		return validateHost(u.Hostname(), "check.http host", allowLocal)
	}
	host, port, err := net.SplitHostPort(c.TCP)
	if err != nil {
		return fault.New(fault.Invalid, "check.tcp %q: want host:port", c.TCP)
	}
	// Atoi takes a sign too; the dialer would look "+80" up as a service
	// name and never connect.
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' {
		return fault.New(fault.Invalid, "check.tcp %q: bad port", c.TCP)
	}
	return validateHost(host, "check.tcp host", allowLocal)
}

func validateLabel(s, what string, limit int) error {
	if s == "" || len(s) > limit || !utf8.ValidString(s) {
		return fault.New(fault.Invalid, "%s %q: want 1 to %d bytes of UTF-8", what, s, limit)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fault.New(fault.Invalid, "%s %q: control characters are not allowed", what, s)
		}
	}
	return nil
}

// validateHost accepts an IP address or a DNS name, and refuses local
// ones unless allowLocal.
func validateHost(host, what string, allowLocal bool) error {
	if host == "" || len(host) > maxAddressLength {
		return fault.New(fault.Invalid, "%s %q: want an IP address or a DNS name", what, host)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !allowLocal && LocalAddr(ip) {
			return fault.New(fault.Invalid, "%s %s is loopback, link-local, unspecified or a metadata address; set STEWARD_REGISTRY_ALLOW_LOCAL=true to allow it", what, host)
		}
		return nil
	}
	name := strings.TrimSuffix(host, ".")
	for _, label := range strings.Split(name, ".") {
		if !dnsLabel.MatchString(label) {
			return fault.New(fault.Invalid, "%s %q: want an IP address or a DNS name", what, host)
		}
	}
	if !allowLocal && localName(strings.ToLower(name)) {
		return fault.New(fault.Invalid, "%s %q names the local host or a metadata service; set STEWARD_REGISTRY_ALLOW_LOCAL=true to allow it", what, host)
	}
	return nil
}

// metadataAddrs are cloud metadata endpoints outside link-local space.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// LocalAddr reports whether ip reaches the local host or a metadata
// service: loopback, link-local, unspecified, or a known metadata address.
func LocalAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsUnspecified() || slices.Contains(metadataAddrs, ip)
}

func localName(name string) bool {
	return name == "localhost" || strings.HasSuffix(name, ".localhost") ||
		name == "metadata" || name == "metadata.google.internal" || name == "instance-data" ||
		strings.HasSuffix(name, ".internal") && strings.HasPrefix(name, "metadata.")
}

// ValidateReport checks a heartbeat's report.
func ValidateReport(r *Report) error {
	if r.Status == "" {
		r.Status = Passing
	}
	if !r.Status.Valid() {
		return fault.New(fault.Invalid, "status %q: want passing, warning or critical", r.Status)
	}
	if len(r.Output) > MaxOutputBytes || !utf8.ValidString(r.Output) {
		return fault.New(fault.Invalid, "output: want UTF-8 of at most %d bytes", MaxOutputBytes)
	}
	return nil
}

// ValidateLeaseTTL checks a lease's TTL.
func ValidateLeaseTTL(ttl Duration) error {
	if ttl.Std() < MinTTL || ttl.Std() > MaxLeaseTTL {
		return fault.New(fault.Invalid, "ttl %s: want %s to %s", ttl.Std(), MinTTL, MaxLeaseTTL)
	}
	return nil
}
