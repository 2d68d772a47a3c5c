package qlog

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ObjectStoreSnapshots keeps snapshots in a JetStream object store bucket
// (STEWARD_<SERVICE>_SNAPSHOTS): the zero-dependency store of dev mode.
// The bucket is created (or updated) on first use, so that a replica
// starting while JetStream cannot answer yet retries there, with the rest
// of its start.
type ObjectStoreSnapshots struct {
	js      jetstream.JetStream
	service string
	replica int
	keep    int

	mu    sync.Mutex
	store jetstream.ObjectStore
}

// maxSnapshotBytes bounds what a store will load back.
const maxSnapshotBytes = 4 << 30

// NewObjectStoreSnapshots keeps the snapshots of service in a bucket with
// the given number of stream replicas; the newest keep snapshots are kept.
func NewObjectStoreSnapshots(js jetstream.JetStream, service string, replicas, keep int) *ObjectStoreSnapshots {
	return &ObjectStoreSnapshots{js: js, service: service, replica: max(replicas, 1), keep: max(keep, 2)}
}

// bucket returns the bucket, creating it on the first call that succeeds.
func (o *ObjectStoreSnapshots) bucket(ctx context.Context) (jetstream.ObjectStore, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.store != nil {
		return o.store, nil
	}
	store, err := o.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      StreamName(o.service) + "_SNAPSHOTS",
		Description: "Steward " + o.service + " snapshots (platform/qlog)",
		Storage:     jetstream.FileStorage,
		Replicas:    o.replica,
	})
	if err != nil {
		return nil, fmt.Errorf("qlog: snapshot bucket: %w", err)
	}
	o.store = store
	return store, nil
}

func objectName(rev int64, replica string) string {
	return fmt.Sprintf("%020d-%s", rev, replica)
}

// SaveSnapshot stores s and deletes all but the newest keep snapshots.
func (o *ObjectStoreSnapshots) SaveSnapshot(ctx context.Context, s Snapshot) error {
	meta := jetstream.ObjectMeta{
		Name: objectName(s.Revision, s.Replica),
		Metadata: map[string]string{
			"service":  s.Service,
			"replica":  s.Replica,
			"revision": strconv.FormatInt(s.Revision, 10),
			"seq":      strconv.FormatUint(s.Seq, 10),
			"checksum": hex.EncodeToString(s.Checksum),
			"created":  s.Created.UTC().Format(time.RFC3339Nano),
		},
	}
	store, err := o.bucket(ctx)
	if err != nil {
		return err
	}
	if _, err := store.Put(ctx, meta, bytes.NewReader(s.Data)); err != nil {
		return err
	}
	infos, err := o.list(ctx)
	if err != nil {
		return err
	}
	for _, info := range infos[min(o.keep, len(infos)):] {
		if err := store.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return err
		}
	}
	return nil
}

// list returns the bucket's snapshots newest first.
func (o *ObjectStoreSnapshots) list(ctx context.Context) ([]*jetstream.ObjectInfo, error) {
	store, err := o.bucket(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := store.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(infos, func(a, b *jetstream.ObjectInfo) int { return strings.Compare(b.Name, a.Name) })
	return infos, nil
}

// NewestSnapshots returns up to limit snapshots newest first.
func (o *ObjectStoreSnapshots) NewestSnapshots(ctx context.Context, service string, limit int) ([]Snapshot, error) {
	infos, err := o.list(ctx)
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, info := range infos {
		if len(out) == limit {
			break
		}
		m := info.Metadata
		if m["service"] != service {
			continue
		}
		rev, _ := strconv.ParseInt(m["revision"], 10, 64)
		seq, _ := strconv.ParseUint(m["seq"], 10, 64)
		sum, _ := hex.DecodeString(m["checksum"])
		created, _ := time.Parse(time.RFC3339Nano, m["created"])
		store, err := o.bucket(ctx)
		if err != nil {
			return nil, err
		}
		obj, err := store.Get(ctx, info.Name)
		if err != nil {
			return nil, err
		}
		data, err := readAll(obj, maxSnapshotBytes)
		obj.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, Snapshot{Service: service, Replica: m["replica"], Revision: rev, Seq: seq,
			Data: data, Checksum: sum, Created: created})
	}
	return out, nil
}
