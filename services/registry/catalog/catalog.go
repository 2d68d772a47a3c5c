// Package catalog is the service registry's replicated state machine:
// services, their instances and health, TTL heartbeats, leases and the
// guard against mass deregistration. It is pure: no I/O and no clock (log
// time comes in each entry); maps are only ever iterated in sorted order,
// so every replica applies the same entries to byte-identical state.
package catalog

import (
	"time"

	"github.com/stewardhq/steward/platform/qlog/envelope"
	"github.com/stewardhq/steward/platform/wire"
)

// AwaitingFirstCheck is the output of an actively checked instance that
// has not been probed yet.
const AwaitingFirstCheck = "awaiting the first check"

// Status is an instance's health, as Consul names it.
type Status string

// Statuses.
const (
	Passing  Status = "passing"
	Warning  Status = "warning"
	Critical Status = "critical"
)

// Valid reports whether s is one of the three statuses.
func (s Status) Valid() bool { return s == Passing || s == Warning || s == Critical }

// Duration is a time.Duration written as "10s" in JSON.
type Duration = wire.Duration

// Check is how an instance's health is known: exactly one of TTL (the
// instance heartbeats), HTTP or TCP (the registry probes it).
type Check struct {
	TTL      Duration `json:"ttl,omitempty"`
	HTTP     string   `json:"http,omitempty"`
	TCP      string   `json:"tcp,omitempty"`
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	// DeregisterAfter removes an instance that stayed critical this long.
	DeregisterAfter Duration `json:"deregisterAfter,omitempty"`
}

// Active reports whether the registry probes this check.
func (c *Check) Active() bool { return c != nil && (c.HTTP != "" || c.TCP != "") }

// Window is the check's period: its TTL or its probe interval. The guard
// counts instances turning critical within one window.
func (c *Check) Window() time.Duration {
	if c == nil {
		return 0
	}
	if c.TTL > 0 {
		return c.TTL.Std()
	}
	return c.Interval.Std()
}

// Registration is what an instance announces about itself.
type Registration struct {
	Address  string            `json:"address"`
	Port     int               `json:"port"`
	Tags     []string          `json:"tags,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Zone     string            `json:"zone,omitempty"`
	Version  string            `json:"version,omitempty"`
	// Weight is nil when the registration names none (1, once
	// normalized); an explicit 0 is refused, as the API document says.
	Weight *int   `json:"weight,omitempty"`
	Check  *Check `json:"check,omitempty"`
}

// SchemeKey is the metadata key of an instance that serves HTTPS: with
// the value "https" the gateway proxies to it, and the scaler scrapes it,
// over TLS. Without it an instance is reached over plain HTTP, as the
// address and port alone say nothing of TLS. Steward's own processes set
// it when they serve HTTPS (STEWARD_TLS_CERT_FILE).
const SchemeKey = "scheme"

// Instance is one registered instance as clients see it.
type Instance struct {
	Service  string            `json:"service"`
	ID       string            `json:"id"`
	Address  string            `json:"address"`
	Port     int               `json:"port"`
	Tags     []string          `json:"tags"`
	Metadata map[string]string `json:"metadata"`
	Zone     string            `json:"zone,omitempty"`
	Version  string            `json:"version,omitempty"`
	Weight   int               `json:"weight"`
	Check    *Check            `json:"check,omitempty"`
	Status   Status            `json:"status"`
	Output   string            `json:"output,omitempty"`
	// StatusSince is the log time of the last status change.
	StatusSince time.Time `json:"statusSince"`
	// Held is a critical result the guard against mass deregistration is
	// holding back: Status stays what it was while Held is set.
	Held  *Report `json:"held,omitempty"`
	Lease int64   `json:"lease,omitempty"`
	// CheckRevision is the revision the check was last (re)defined at;
	// probe reports name it so that a report about an old check is
	// ignored.
	CheckRevision  int64 `json:"checkRevision,omitempty"`
	CreateRevision int64 `json:"createRevision"`
	ModRevision    int64 `json:"modRevision"`
	// By is the id of the token whose write last changed the instance
	// (in a deregister event: removed it): the registry's own token
	// (STEWARD_AUTH_TOKEN) when its checks did; empty when expiry did,
	// and with auth off.
	By string `json:"by,omitempty"`
}

// Scheme returns the scheme an instance is reached with: "https" when
// its metadata says so (SchemeKey), else "http".
func (i Instance) Scheme() string {
	if i.Metadata[SchemeKey] == "https" {
		return "https"
	}
	return "http"
}

// Report is a health result: a heartbeat's or a probe's.
type Report struct {
	Status Status `json:"status"`
	Output string `json:"output,omitempty"`
}

// InstanceSet is one event of a service's watch stream: the whole set of
// instances (that pass the stream's filter) as of Revision.
type InstanceSet struct {
	Service   string     `json:"service"`
	Revision  int64      `json:"revision"`
	Protected bool       `json:"protected"`
	Instances []Instance `json:"instances"`
	// By is the id of the token whose write made the latest change the
	// set reflects (a deregistration too): the registry's own when its
	// checks made it; empty when expiry made it, at the start of a
	// stream, and with auth off.
	By string `json:"by,omitempty"`
}

// Service summarises one service for GET /v1/services.
type Service struct {
	Name      string   `json:"name"`
	Instances int      `json:"instances"`
	Passing   int      `json:"passing"`
	Warning   int      `json:"warning"`
	Critical  int      `json:"critical"`
	Tags      []string `json:"tags"`
	// Protected: the guard is holding back critical results (see Guard).
	Protected   bool  `json:"protected"`
	ModRevision int64 `json:"modRevision"`
}

// Lease binds instances to a client's liveness: when it expires or is
// revoked, its instances are deregistered.
type Lease struct {
	ID        int64     `json:"id"`
	TTL       Duration  `json:"ttl"`
	ExpiresAt time.Time `json:"expiresAt"`
	Instances []string  `json:"instances"` // "service/id", sorted
}

// Guard is the policy against mass deregistration (Eureka's
// self-preservation, made explicit): in a service of at least MinInstances
// instances, when more than Share of them would turn critical within one
// check window, they keep their previous status and the service is marked
// protected. It travels in the commands that can turn instances critical,
// so every replica applies the same policy.
type Guard struct {
	MinInstances int     `json:"minInstances"`
	Share        float64 `json:"share"`
}

// Command is a proposal to the catalog; Op selects the fields that matter.
type Command struct {
	// register, deregister, heartbeat, report, expire, reap, clear,
	// grant, keepalive, revoke, expireLease
	Op       string        `json:"op"`
	Service  string        `json:"service,omitempty"`
	ID       string        `json:"id,omitempty"`
	Register *Registration `json:"register,omitempty"`
	Report   *Report       `json:"report,omitempty"`
	// Items are the instances a report, expire or reap batch is about.
	Items []Item `json:"items,omitempty"`
	Guard *Guard `json:"guard,omitempty"`
	// Lease binds a registration; it names the lease of keepalive,
	// revoke and expireLease.
	Lease int64    `json:"lease,omitempty"`
	TTL   Duration `json:"ttl,omitempty"`
	// Since is expireLease's precondition: not renewed after it.
	Since int64 `json:"since,omitempty"`
	// By is the id of the token that made the write (authhttp.By; for
	// the checks' reports, the registry's own token), empty for expiries
	// and with auth off: the audit record, stamped on the instances the
	// command changes.
	By string `json:"by,omitempty"`
}

// Item is one instance in a batch. Since is the precondition: for expire,
// not renewed after it; for reap, critical since it; for report, the
// check's revision.
type Item struct {
	Service string  `json:"service"`
	ID      string  `json:"id"`
	Since   int64   `json:"since"`
	Report  *Report `json:"report,omitempty"`
}

// Outcome is the class of a command's result. Failed preconditions are
// applied no-ops whose outcome says why, and whose fault (envelope.Problem)
// says how a client sees it.
type Outcome string

// Outcomes.
const (
	OK            Outcome = "ok"
	NotFound      Outcome = "notFound"
	LeaseNotFound Outcome = "leaseNotFound"
	Conflict      Outcome = "conflict"
	Invalid       Outcome = "invalid"
	NotDue        Outcome = "notDue"
)

// Result is what Apply returns (JSON-encoded).
type Result struct {
	Outcome  Outcome   `json:"outcome"`
	Instance *Instance `json:"instance,omitempty"`
	Lease    *Lease    `json:"lease,omitempty"`
	// Applied counts the items of a batch that took effect.
	Applied int `json:"applied,omitempty"`
	envelope.Problem
}

// Event types; an event's key is the service name.
const (
	EventInstance   = "instance"   // data: the Instance after the change
	EventDeregister = "deregister" // data: the Instance as it was
	EventService    = "service"    // data: ServiceState
)

// ServiceState is the data of a service event: the guard engaged or lifted.
type ServiceState struct {
	Service   string `json:"service"`
	Protected bool   `json:"protected"`
	Held      int    `json:"held"`
	Instances int    `json:"instances"`
	// By is the id of the token whose write engaged or lifted the guard
	// (as Instance.By).
	By string `json:"by,omitempty"`
}
