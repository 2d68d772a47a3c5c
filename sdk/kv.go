package sdk

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/sdk/api"
)

// KeyValue is one version of a key.
type KeyValue struct {
	Key string `json:"key"`
	// Value is the JSON document stored; empty in a keys-only listing
	// and in a delete event's tombstone.
	Value          json.RawMessage `json:"value,omitempty"`
	CreateRevision int64           `json:"createRevision"`
	// ModRevision is the revision of this version: the key's ETag, the
	// revision a compare-and-swap names.
	ModRevision int64  `json:"modRevision"`
	Version     int64  `json:"version"`
	Lease       int64  `json:"lease,omitempty"`
	By          string `json:"by,omitempty"`
}

// KV is the configuration store: keys holding JSON documents, each
// change a revision of one linearizable log.
type KV struct{ c *Client }

// KV is the configuration store.
func (c *Client) KV() KV { return KV{c} }

// ReadOption sets up a read.
type ReadOption func(*readOptions)

type readOptions struct {
	revision     int64
	serializable bool
}

// AtRevision reads the state as it was at revision rev.
func AtRevision(rev int64) ReadOption { return func(o *readOptions) { o.revision = rev } }

// Serializable reads the replica's state without the round through the
// log that makes a read linearizable: faster, possibly stale.
func Serializable() ReadOption { return func(o *readOptions) { o.serializable = true } }

func readWith(opts []ReadOption) readOptions {
	var o readOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WriteOption sets up a write.
type WriteOption func(*writeOptions)

type writeOptions struct {
	lease      int64
	ifRevision int64
	ifAbsent   bool
	fence      string
}

// WithLease attaches the key to lease id: it is deleted when the lease
// expires or is revoked.
func WithLease(id int64) WriteOption { return func(o *writeOptions) { o.lease = id } }

// IfRevision makes the write a compare-and-swap: it happens only while
// the key's ModRevision is rev (0: while the key does not exist), and
// fails with ErrPreconditionFailed otherwise.
func IfRevision(rev int64) WriteOption {
	return func(o *writeOptions) {
		if rev == 0 {
			o.ifAbsent = true
		} else {
			o.ifRevision = rev
		}
	}
}

// WithFence makes the write happen only while fence (an election's
// "name:token", see Leadership.Fence) is the election's current token.
func WithFence(fence string) WriteOption { return func(o *writeOptions) { o.fence = fence } }

func writeWith(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// keyPath is key as the path of /v1/kv/{key} takes it: without its
// leading slash, which the path gives ("/app/db" and "app/db" are the
// same key). The generated client escapes the rest, slashes too.
func keyPath(key string) string { return strings.TrimPrefix(key, "/") }

// etag is the If-Match value of revision rev.
func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// Get reads key; ErrNotFound when it does not exist.
func (kv KV) Get(ctx context.Context, key string, opts ...ReadOption) (*KeyValue, error) {
	o := readWith(opts)
	p := &api.GetKeyParams{}
	if o.revision > 0 {
		p.Revision = &o.revision
	}
	if o.serializable {
		s := api.GetKeyParamsConsistency("serializable")
		p.Consistency = &s
	}
	return decode[KeyValue](kv.c.api.GetKey(ctx, keyPath(key), p))
}

// Put writes value, marshalled to JSON (a json.RawMessage or []byte is
// sent as it is), to key.
func (kv KV) Put(ctx context.Context, key string, value any, opts ...WriteOption) (*KeyValue, error) {
	body, err := marshalValue(value)
	if err != nil {
		return nil, err
	}
	o := writeWith(opts)
	p := &api.PutKeyParams{}
	if o.lease > 0 {
		p.Lease = &o.lease
	}
	if o.ifRevision > 0 {
		m := etag(o.ifRevision)
		p.IfMatch = &m
	}
	if o.ifAbsent {
		n := api.PutKeyParamsIfNoneMatch("*")
		p.IfNoneMatch = &n
	}
	if o.fence != "" {
		p.XStewardFence = &o.fence
	}
	return decode[KeyValue](kv.c.api.PutKeyWithBody(ctx, keyPath(key), p, "application/json", bytesReader(body)))
}

// Delete deletes key; ErrNotFound when it does not exist.
func (kv KV) Delete(ctx context.Context, key string, opts ...WriteOption) error {
	o := writeWith(opts)
	p := &api.DeleteKeyParams{}
	if o.ifRevision > 0 {
		m := etag(o.ifRevision)
		p.IfMatch = &m
	}
	if o.fence != "" {
		p.XStewardFence = &o.fence
	}
	return check(kv.c.api.DeleteKey(ctx, keyPath(key), p))
}

// DeletePrefix deletes every key under prefix and says how many.
func (kv KV) DeletePrefix(ctx context.Context, prefix string, opts ...WriteOption) (int64, error) {
	o := writeWith(opts)
	p := &api.DeletePrefixParams{Prefix: prefix}
	if o.fence != "" {
		p.XStewardFence = &o.fence
	}
	d, err := decode[api.PrefixDeletion](kv.c.api.DeletePrefix(ctx, p))
	if err != nil {
		return 0, err
	}
	return d.Deleted, nil
}

// ListOptions page and shape a listing.
type ListOptions struct {
	// Limit is the most keys per page (0: the server's default).
	Limit int
	// After starts the listing after this key (a page's Next).
	After    string
	KeysOnly bool
	// Serializable reads the replica's state without a round through
	// the log.
	Serializable bool
}

// Page is one page of a listing.
type Page struct {
	Items []KeyValue `json:"items"`
	// Next is the After of the next page, "" on the last.
	Next     string `json:"next"`
	Revision int64  `json:"revision"`
}

// List lists the keys under prefix, one page.
func (kv KV) List(ctx context.Context, prefix string, o ListOptions) (*Page, error) {
	p := &api.ListKeysParams{Prefix: &prefix}
	if o.Limit > 0 {
		n := int64(o.Limit)
		p.Limit = &n
	}
	if o.After != "" {
		p.After = &o.After
	}
	if o.KeysOnly {
		p.KeysOnly = &o.KeysOnly
	}
	if o.Serializable {
		s := api.ListKeysParamsConsistency("serializable")
		p.Consistency = &s
	}
	return decode[Page](kv.c.api.ListKeys(ctx, p))
}

// All lists every key under prefix, page after page.
func (kv KV) All(ctx context.Context, prefix string, o ListOptions) iter.Seq2[KeyValue, error] {
	return func(yield func(KeyValue, error) bool) {
		for {
			page, err := kv.List(ctx, prefix, o)
			if err != nil {
				yield(KeyValue{}, err)
				return
			}
			for _, item := range page.Items {
				if !yield(item, nil) {
					return
				}
			}
			if page.Next == "" {
				return
			}
			o.After = page.Next
		}
	}
}

// History is the versions of key still kept, newest first, up to limit
// (0: the server's default).
func (kv KV) History(ctx context.Context, key string, limit int) ([]Version, error) {
	p := &api.HistoryParams{Key: key}
	if limit > 0 {
		n := int64(limit)
		p.Limit = &n
	}
	h, err := decode[struct {
		Items []Version `json:"items"`
	}](kv.c.api.History(ctx, p))
	if err != nil {
		return nil, err
	}
	return h.Items, nil
}

// Version is one version of a key in its history; Deleted marks a
// deletion.
type Version struct {
	KeyValue
	Deleted bool `json:"deleted,omitempty"`
}

// WatchOptions choose what a watch follows and from where.
type WatchOptions struct {
	Key    string // one key, or
	Prefix string // every key under a prefix
	// FromRevision starts with the changes at this revision, if the log
	// still holds them (ErrGone otherwise); 0: changes after now.
	FromRevision int64
}

// KVEvent is one change a watch saw: a put or a delete (Type), the key's
// new version (for a delete, a tombstone: Key and ModRevision) and, when
// there was one, the version before.
type KVEvent struct {
	Type  string    `json:"-"`
	Entry KeyValue  `json:"entry"`
	Prev  *KeyValue `json:"prevEntry,omitempty"`
}

// Watch streams the changes to a key or a prefix in revision order, with
// no gap and no repeat, across disconnects and replicas, until ctx ends
// or the caller stops ranging.
func (kv KV) Watch(ctx context.Context, o WatchOptions) iter.Seq2[KVEvent, error] {
	return func(yield func(KVEvent, error) bool) {
		p := &api.WatchParams{}
		if o.Key != "" {
			p.Key = &o.Key
		}
		if o.Prefix != "" {
			p.Prefix = &o.Prefix
		}
		if o.FromRevision > 0 {
			p.FromRevision = &o.FromRevision
		}
		events := kv.c.stream(ctx, func(ctx context.Context, lastID string) (*http.Response, error) {
			return kv.c.api.Watch(ctx, p, streamEditors(lastID))
		})
		for ev, err := range events {
			if err != nil {
				yield(KVEvent{}, err)
				return
			}
			e := KVEvent{Type: ev.Type}
			if err := json.Unmarshal(ev.Data, &e); err != nil {
				yield(KVEvent{}, err)
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// Lease is a lease on the config service: keys attached to it are
// deleted when it expires unless kept alive.
type Lease struct {
	ID        int64     `json:"id"`
	TTL       Duration  `json:"ttl"`
	ExpiresAt time.Time `json:"expiresAt"`
	Keys      []string  `json:"keys,omitempty"`
}

// Leases are the config service's leases.
type Leases struct{ c *Client }

// Leases are the config service's leases.
func (c *Client) Leases() Leases { return Leases{c} }

// Grant makes a lease of ttl.
func (l Leases) Grant(ctx context.Context, ttl time.Duration) (*Lease, error) {
	return decode[Lease](l.c.api.ConfigGrantLease(ctx, &api.ConfigGrantLeaseParams{}, api.ConfigGrantRequest{Ttl: ttl.String()}))
}

// KeepAlive renews lease id for its TTL.
func (l Leases) KeepAlive(ctx context.Context, id int64) (*Lease, error) {
	return decode[Lease](l.c.api.ConfigKeepaliveLease(ctx, id, &api.ConfigKeepaliveLeaseParams{}))
}

// Get reads lease id with the keys attached to it.
func (l Leases) Get(ctx context.Context, id int64) (*Lease, error) {
	return decode[Lease](l.c.api.ConfigGetLease(ctx, id, &api.ConfigGetLeaseParams{}))
}

// Revoke ends lease id and deletes its keys.
func (l Leases) Revoke(ctx context.Context, id int64) error {
	return check(l.c.api.ConfigRevokeLease(ctx, id, &api.ConfigRevokeLeaseParams{}))
}
