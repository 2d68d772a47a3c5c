package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

// sdkDev is a steward dev whose gateway follows its services, and a
// Go SDK client of it.
func sdkDev(t *testing.T) (*dev, *sdk.Client) {
	t.Helper()
	d := startDev(t)
	waitFollowing(t, d)
	c, err := sdk.New(d.gateway)
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

// TestSDKKV drives the config store through the Go SDK and the gateway,
// as a user's program does: keys with slashes land as the keys they
// name, a compare-and-swap on a stale revision is refused, a lease
// reports its TTL and takes its keys with it, a transaction compares
// and writes at one revision, and a write retried with its
// Idempotency-Key happens once.
func TestSDKKV(t *testing.T) {
	_, c := sdkDev(t)
	ctx := t.Context()
	kv := c.KV()

	put, err := kv.Put(ctx, "app/db/url", "postgres://db:5432")
	if err != nil {
		t.Fatal(err)
	}
	if put.Key != "/app/db/url" {
		t.Fatalf("put app/db/url stored key %q, want /app/db/url", put.Key)
	}
	got, err := kv.Get(ctx, "/app/db/url")
	if err != nil || string(got.Value) != `"postgres://db:5432"` {
		t.Fatalf("get /app/db/url = %+v, %v", got, err)
	}
	var keys []string
	for item, err := range kv.All(ctx, "/app/", sdk.ListOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, item.Key)
	}
	if strings.Join(keys, ",") != "/app/db/url" {
		t.Fatalf("keys under /app/ = %v, want [/app/db/url]", keys)
	}
	if _, err := kv.Get(ctx, "app/missing"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("get app/missing: %v, want ErrNotFound", err)
	}

	// Compare-and-swap.
	if _, err := kv.Put(ctx, "app/db/url", "x", sdk.IfRevision(0)); !errors.Is(err, sdk.ErrPreconditionFailed) {
		t.Fatalf("create-only put of an existing key: %v, want ErrPreconditionFailed", err)
	}
	if _, err := kv.Put(ctx, "app/db/url", "x", sdk.IfRevision(put.ModRevision+100)); !errors.Is(err, sdk.ErrPreconditionFailed) {
		t.Fatalf("put on a stale revision: %v, want ErrPreconditionFailed", err)
	}
	swapped, err := kv.Put(ctx, "app/db/url", "postgres://db2:5432", sdk.IfRevision(put.ModRevision))
	if err != nil || swapped.Version != 2 {
		t.Fatalf("put on the current revision = %+v, %v; want version 2", swapped, err)
	}

	// A lease's TTL, and its keys going with it.
	lease, err := c.Leases().Grant(ctx, 10*time.Second)
	if err != nil || lease.TTL != sdk.Duration(10*time.Second) {
		t.Fatalf("grant 10s = %+v, %v", lease, err)
	}
	if _, err := kv.Put(ctx, "app/session", 1, sdk.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if l, err := c.Leases().KeepAlive(ctx, lease.ID); err != nil || l.TTL != lease.TTL {
		t.Fatalf("keepalive = %+v, %v; want TTL %s", l, err, lease.TTL)
	}
	if err := c.Leases().Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "app/session"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("key of a revoked lease: %v, want ErrNotFound", err)
	}

	// A transaction: it compares with the revision just written and
	// writes two keys at one revision; run again, the revision is
	// stale and the other branch runs.
	txn := sdk.Txn{
		If:   []sdk.Cmp{sdk.Compare("/app/db/url", "modRevision", "==", swapped.ModRevision)},
		Then: []sdk.Op{sdk.Put("/app/db/url", "postgres://db3:5432"), sdk.Put("/app/db/pool", 10)},
		Else: []sdk.Op{sdk.Get("/app/db/url")},
	}
	out, err := kv.Txn(ctx, txn)
	if err != nil || !out.Succeeded || len(out.Results) != 2 || out.Results[0].Put == nil || out.Results[1].Put == nil ||
		out.Results[0].Put.ModRevision != out.Revision || out.Results[1].Put.ModRevision != out.Revision {
		t.Fatalf("txn = %+v, %v; want the success branch at one revision", out, err)
	}
	if out, err := kv.Txn(ctx, txn); err != nil || out.Succeeded || !out.Results[0].Found || string(out.Results[0].Get.Value) != `"postgres://db3:5432"` {
		t.Fatalf("txn on a stale revision = %+v, %v; want the failure branch", out, err)
	}

	// A write retried with the same Idempotency-Key happens once.
	body := strings.NewReader(`{"n":1}`)
	var revs []int64
	for range 2 {
		body.Seek(0, 0)
		res, err := c.API().PutKeyWithBody(ctx, "app/once", &api.PutKeyParams{IdempotencyKey: ptr("sdk-test-once")}, "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		var e sdk.KeyValue
		if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		revs = append(revs, e.ModRevision)
	}
	if revs[0] != revs[1] {
		t.Fatalf("a put sent twice with one Idempotency-Key made revisions %v, want one", revs)
	}
}

func ptr[T any](v T) *T { return &v }

// TestSDKWatchResumes cuts the connection of a KV watch again and again
// while keys change, and checks that the SDK's iterator, resuming with
// Last-Event-ID each time, delivers every change exactly once and in
// revision order.
func TestSDKWatchResumes(t *testing.T) {
	d, _ := sdkDev(t)
	proxy := webtest.NewCutProxy(t, d.gateway)
	c, err := sdk.New(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := sdk.New(d.gateway)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	const puts = 60
	first, err := direct.KV().Put(ctx, "/w/start", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The writer waits for the watcher to see each put, and cuts the
	// watch's connection after every third one: each cut lands while the
	// watch streams, with more changes to come.
	seen := make(chan int64, puts)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range puts {
			if _, err := direct.KV().Put(ctx, "/w/k"+strconv.Itoa(i%7), i); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-seen:
			case <-ctx.Done():
				return
			}
			if i%3 == 1 {
				proxy.Cut()
			}
		}
	}()
	var revs []int64
	for ev, err := range c.KV().Watch(ctx, sdk.WatchOptions{Prefix: "/w/", FromRevision: first.ModRevision + 1}) {
		if err != nil {
			t.Fatalf("after %d events: %v", len(revs), err)
		}
		if ev.Type != "put" {
			t.Fatalf("event %+v, want a put", ev)
		}
		revs = append(revs, ev.Entry.ModRevision)
		seen <- ev.Entry.ModRevision
		if len(revs) == puts {
			break
		}
	}
	wg.Wait()
	for i, r := range revs {
		if want := first.ModRevision + 1 + int64(i); r != want {
			t.Fatalf("event %d has revision %d, want %d (all: %v)", i, r, want, revs)
		}
	}
}

// TestSDKFailsOver gives the SDK an endpoint that refuses connections
// before the gateway: every call still lands, on the one that answers.
func TestSDKFailsOver(t *testing.T) {
	d, _ := sdkDev(t)
	c, err := sdk.New("http://127.0.0.1:1," + d.gateway)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.KV().Put(t.Context(), "/failover", i); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if c.Endpoint() != d.gateway {
		t.Fatalf("endpoint in use %s, want %s", c.Endpoint(), d.gateway)
	}
	res, err := c.API().GetKey(t.Context(), "failover", nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET through the generated client: %v, %v", res, err)
	}
	res.Body.Close()
}
