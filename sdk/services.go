package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/stewardhq/steward/sdk/api"
)

// SchemeKey is the metadata key of an instance that serves HTTPS: with
// the value "https" the gateway proxies to it, and the scaler scrapes it,
// over TLS. Without it an instance is reached over plain HTTP, as an
// address and a port say nothing of TLS.
const SchemeKey = "scheme"

// Services is the service registry: instances of services, their health,
// and watches of them.
type Services struct{ c *Client }

// Services is the service registry.
func (c *Client) Services() Services { return Services{c} }

// Query selects a service's instances; every field is optional. Index
// and Wait make Instances a blocking query; a watch ignores them.
type Query struct {
	// Status keeps the instances with this status (api.Passing: those
	// that should get traffic).
	Status api.RegistryStatus
	Tag    string
	Zone   string
	// Index, with Wait, holds the answer until the list's index passes
	// Index (pass the index of the previous answer), or Wait (at most 5m)
	// has passed.
	Index int64
	Wait  time.Duration
}

// instancesParams is q as the parameters of a listing.
func (q Query) instancesParams() *api.ListInstancesParams {
	p := &api.ListInstancesParams{}
	if q.Status != "" {
		p.Status = &q.Status
	}
	if q.Tag != "" {
		p.Tag = &q.Tag
	}
	if q.Zone != "" {
		p.Zone = &q.Zone
	}
	if q.Index > 0 {
		p.Index = &q.Index
		if q.Wait > 0 {
			w := q.Wait.String()
			p.Wait = &w
		}
	}
	return p
}

// watchParams is q's filters as the parameters of a watch.
func (q Query) watchParams() *api.WatchServiceParams {
	l := q.instancesParams()
	return &api.WatchServiceParams{Status: l.Status, Tag: l.Tag, Zone: l.Zone}
}

// indexOf is the X-Steward-Index of a registry answer, 0 without one.
func indexOf(res *http.Response) int64 {
	n, _ := strconv.ParseInt(res.Header.Get("X-Steward-Index"), 10, 64)
	return n
}

// List lists every service that has an instance.
func (s Services) List(ctx context.Context) ([]api.ServiceSummary, error) {
	list, _, err := s.ListAfter(ctx, 0, 0)
	return list, err
}

// ListAfter lists every service that has an instance, and the list's
// index: the revision of the last change to any service. With index > 0
// it is a blocking query that answers once the list's index passes index,
// or when wait (at most 5m) has passed.
func (s Services) ListAfter(ctx context.Context, index int64, wait time.Duration) ([]api.ServiceSummary, int64, error) {
	p := &api.ListServicesParams{}
	if index > 0 {
		p.Index = &index
		if wait > 0 {
			w := wait.String()
			p.Wait = &w
		}
	}
	res, err := s.c.api.ListServices(ctx, p)
	list, err := decode[[]api.ServiceSummary](res, err)
	if err != nil {
		return nil, 0, err
	}
	return *list, indexOf(res), nil
}

// Instances lists a service's instances that q selects, and the list's
// index (for q.Index). A service without instances has none: no error.
func (s Services) Instances(ctx context.Context, service string, q Query) ([]api.Instance, int64, error) {
	res, err := s.c.api.ListInstances(ctx, service, q.instancesParams())
	list, err := decode[[]api.Instance](res, err)
	if err != nil {
		return nil, 0, err
	}
	return *list, indexOf(res), nil
}

// Get reads one instance; ErrNotFound when it is not registered.
func (s Services) Get(ctx context.Context, service, id string) (*api.Instance, error) {
	return decode[api.Instance](s.c.api.GetInstance(ctx, service, id, &api.GetInstanceParams{}))
}

// Register registers an instance, or updates its registration. Of the
// options only WithLease applies: the instance is deregistered when that
// registry lease (RegistryLeases) expires or is revoked.
func (s Services) Register(ctx context.Context, service, id string, reg api.Registration, opts ...WriteOption) (*api.Instance, error) {
	p := &api.RegisterInstanceParams{}
	if o := writeWith(opts); o.lease > 0 {
		p.Lease = &o.lease
	}
	return decode[api.Instance](s.c.api.RegisterInstance(ctx, service, id, p, reg))
}

// Deregister removes an instance; ErrNotFound when it is not registered.
func (s Services) Deregister(ctx context.Context, service, id string) error {
	return check(s.c.api.DeregisterInstance(ctx, service, id, &api.DeregisterInstanceParams{}))
}

// Heartbeat renews an instance's TTL check as passing; ErrNotFound when
// the registry does not know the instance (any more).
func (s Services) Heartbeat(ctx context.Context, service, id string) error {
	return check(s.c.api.Heartbeat(ctx, service, id, &api.HeartbeatParams{}, api.HeartbeatRequest{}))
}

// Watch follows a service's instances that q's status, tag and zone
// select: it yields the whole set at the start and after every change,
// until ctx ends or the caller stops ranging. A broken stream is resumed
// with Last-Event-ID, on the endpoint in use or the next; since every
// event is the whole set and every replica applies the same log, a resume
// leaves no gap. An answer 4xx (a bad filter, a token without access)
// ends it with the Error.
func (s Services) Watch(ctx context.Context, service string, q Query) iter.Seq2[api.InstanceSet, error] {
	return func(yield func(api.InstanceSet, error) bool) {
		p := q.watchParams()
		events := s.c.stream(ctx, func(ctx context.Context, lastID string) (*http.Response, error) {
			return s.c.api.WatchService(ctx, service, p, streamEditors(lastID))
		})
		for ev, err := range events {
			if err != nil {
				yield(api.InstanceSet{}, err)
				return
			}
			if ev.Type != "instances" {
				continue
			}
			var set api.InstanceSet
			if err := json.Unmarshal(ev.Data, &set); err != nil {
				yield(api.InstanceSet{}, err)
				return
			}
			if !yield(set, nil) {
				return
			}
		}
	}
}

// AnnounceTTL is the TTL check Announce registers with unless told
// otherwise; it heartbeats at a third of it.
const AnnounceTTL = 10 * time.Second

// AnnounceOptions qualify Announce.
type AnnounceOptions struct {
	// TTL is the instance's TTL check (0: AnnounceTTL); a heartbeat goes
	// every TTL/3. The Client's timeout (WithTimeout) should be well
	// under TTL/3, so that a heartbeat that meets a hung endpoint still
	// lands in time on the next.
	TTL time.Duration
	// DeregisterAfter removes an instance critical this long, e.g. after
	// the process died without deregistering (0: 1m).
	DeregisterAfter time.Duration
	// Logger hears of the registration and of failed attempts (nil: no
	// log).
	Logger *slog.Logger
}

// Announce keeps an instance registered for as long as ctx lives: it
// registers reg with a TTL check and heartbeats until ctx ends, then
// deregisters it. It registers again when the registry forgot the
// instance (deregistered after a long outage) and retries while the
// registry is unreachable or not ready, from 100 ms and doubling up to the
// heartbeat interval, so that a registry starting beside the process lists
// it as soon as it can; it returns only when ctx ends.
func (s Services) Announce(ctx context.Context, service, id string, reg api.Registration, o AnnounceOptions) {
	ttl := cmpOr(o.TTL, AnnounceTTL)
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	after := cmpOr(o.DeregisterAfter, time.Minute).String()
	reg.Check = &api.Check{}
	_ = reg.Check.FromTTLCheck(api.TTLCheck{Ttl: ttl.String(), DeregisterAfter: &after}) // two strings always marshal
	// registered: the registry has the instance as far as we know;
	// tried: a registration was sent, whose answer may have been cut off
	// by ctx ending after the registry applied it.
	registered, tried := false, false
	every := ttl / 3
	retry := 100 * time.Millisecond
	for {
		var err error
		if registered {
			err = s.Heartbeat(ctx, service, id)
			if errors.Is(err, ErrNotFound) {
				registered = false
			}
		}
		if !registered {
			tried = true
			if _, err = s.Register(ctx, service, id, reg); err == nil {
				registered = true
				logger.Info("registered in the service registry", "service", service, "id", id, "address", reg.Address, "port", reg.Port)
			}
		}
		next := every
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("service registry announcement failed", "service", service, "err", err, "retry_in", retry)
			}
			next, retry = retry, min(2*retry, every)
		} else {
			retry = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			if registered || tried {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				_ = s.Deregister(dctx, service, id)
				cancel()
			}
			return
		case <-time.After(next):
		}
	}
}

// cmpOr is d, or def when d is not positive.
func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// RegistryLeases are the registry's leases: instances registered with
// one (Register with WithLease) are deregistered when it expires or is
// revoked, so that one keepalive keeps many instances.
type RegistryLeases struct{ c *Client }

// RegistryLeases are the registry's leases.
func (c *Client) RegistryLeases() RegistryLeases { return RegistryLeases{c} }

// Grant makes a lease of ttl (1s to 1h).
func (l RegistryLeases) Grant(ctx context.Context, ttl time.Duration) (*api.RegistryLease, error) {
	return decode[api.RegistryLease](l.c.api.RegistryGrantLease(ctx, &api.RegistryGrantLeaseParams{}, api.RegistryGrantRequest{Ttl: ttl.String()}))
}

// KeepAlive renews lease id for its TTL; ErrNotFound once it expired.
func (l RegistryLeases) KeepAlive(ctx context.Context, id int64) (*api.RegistryLease, error) {
	return decode[api.RegistryLease](l.c.api.RegistryKeepaliveLease(ctx, id, &api.RegistryKeepaliveLeaseParams{}))
}

// Get reads lease id with the instances bound to it.
func (l RegistryLeases) Get(ctx context.Context, id int64) (*api.RegistryLease, error) {
	return decode[api.RegistryLease](l.c.api.RegistryGetLease(ctx, id, &api.RegistryGetLeaseParams{}))
}

// Revoke ends lease id and deregisters its instances.
func (l RegistryLeases) Revoke(ctx context.Context, id int64) error {
	return check(l.c.api.RegistryRevokeLease(ctx, id, &api.RegistryRevokeLeaseParams{}))
}
