package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

// gatewaySDK is a Go SDK client of the steward dev d through base (its
// gateway, or a proxy in front of it), once the gateway follows the
// registry, the election service and the config service.
func gatewaySDK(t *testing.T, d *dev, base string) *sdk.Client {
	t.Helper()
	waitReady(t, d.registry+"/readyz", d.election+"/readyz", d.config+"/readyz", d.gateway+"/readyz",
		d.gateway+"/v1/services", d.gateway+"/v1/elections", d.gateway+"/v1/kv?prefix=/")
	c, err := sdk.New(base)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSDKServices drives the registry through the Go SDK and the gateway:
// an instance registered is listed, read and deregistered; an id with a
// slash is sent as one path segment (and refused, as ids allow no
// slash), never as a path that reaches another operation; a watch sees
// an instance appear, and after its connection is cut it resumes where it
// was, without yielding a set twice; Announce keeps an instance registered
// past its TTL and deregisters it when its context ends.
func TestSDKServices(t *testing.T) {
	d := startDev(t)
	proxy := webtest.NewCutProxy(t, d.gateway)
	c := gatewaySDK(t, d, proxy.URL)
	reg := c.Services()
	ctx := t.Context()

	// Register, list, get, deregister.
	const id = "web-7f9c.local:8080"
	inst, err := reg.Register(ctx, "sdk-web", id, api.Registration{Address: "10.0.0.7", Port: 8080, Tags: &[]string{"blue"}})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Id != id || inst.Service != "sdk-web" || inst.Status != api.Passing {
		t.Fatalf("Register = %+v, want %s/%s passing", inst, "sdk-web", id)
	}
	got, err := reg.Get(ctx, "sdk-web", id)
	if err != nil || got.Address != "10.0.0.7" || got.Port != 8080 {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	list, index, err := reg.Instances(ctx, "sdk-web", sdk.Query{Status: api.Passing, Tag: "blue"})
	if err != nil || len(list) != 1 || list[0].Id != id || index == 0 {
		t.Fatalf("Instances(passing, blue) = %+v, index %d, %v", list, index, err)
	}
	if list, _, err := reg.Instances(ctx, "sdk-web", sdk.Query{Tag: "green"}); err != nil || len(list) != 0 {
		t.Fatalf("Instances(green) = %+v, %v; want none", list, err)
	}
	services, err := reg.List(ctx)
	if err != nil || !slices.ContainsFunc(services, func(s api.ServiceSummary) bool { return s.Name == "sdk-web" && s.Passing == 1 }) {
		t.Fatalf("List = %+v, %v; want sdk-web with 1 passing", services, err)
	}
	// "a/heartbeat" unescaped would be the heartbeat of instance a.
	if _, err := reg.Register(ctx, "sdk-web", "a/heartbeat", api.Registration{Address: "10.0.0.8", Port: 80}); !errors.Is(err, sdk.ErrBadRequest) {
		t.Fatalf("Register of id a/heartbeat: %v, want ErrBadRequest", err)
	}
	if _, err := reg.Get(ctx, "sdk-web", "a"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("Get of a after registering a/heartbeat: %v, want ErrNotFound", err)
	}
	if err := reg.Deregister(ctx, "sdk-web", id); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "sdk-web", id); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("Get after Deregister: %v, want ErrNotFound", err)
	}
	if err := reg.Deregister(ctx, "sdk-web", id); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("second Deregister: %v, want ErrNotFound", err)
	}

	// A watch, cut and resumed.
	var (
		mu   sync.Mutex
		sets []api.InstanceSet
	)
	seen := func(want ...string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(sets) > 0 && slices.Equal(instanceIDs(sets[len(sets)-1]), want)
		}
	}
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() {
		for set, err := range reg.Watch(wctx, "sdk-watch", sdk.Query{Status: api.Passing}) {
			if err != nil {
				watched <- err
				return
			}
			mu.Lock()
			sets = append(sets, set)
			mu.Unlock()
		}
	}()
	if _, err := reg.Register(ctx, "sdk-watch", "w-1", api.Registration{Address: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 10*time.Second, "the watch seeing w-1", seen("w-1"))
	proxy.Cut()
	if _, err := reg.Register(ctx, "sdk-watch", "w-2", api.Registration{Address: "10.0.0.2", Port: 80}); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 15*time.Second, "the watch seeing w-1 and w-2 after the cut", seen("w-1", "w-2"))
	stop()
	if err := <-watched; !errors.Is(err, context.Canceled) {
		t.Fatalf("the watch ended with %v, want context.Canceled", err)
	}
	mu.Lock()
	for i := 1; i < len(sets); i++ {
		if sets[i].Revision <= sets[i-1].Revision {
			t.Errorf("the watch yielded revision %d after %d: a resume must not yield a set again", sets[i].Revision, sets[i-1].Revision)
		}
	}
	mu.Unlock()

	// Announce, past the TTL, then cancelled.
	actx, cancel := context.WithCancel(ctx)
	announced := make(chan struct{})
	go func() {
		defer close(announced)
		reg.Announce(actx, "sdk-announce", "a-1", api.Registration{Address: "10.0.0.3", Port: 80}, sdk.AnnounceOptions{TTL: 2 * time.Second})
	}()
	status := func() api.RegistryStatus {
		inst, err := reg.Get(ctx, "sdk-announce", "a-1")
		if err != nil {
			return ""
		}
		return inst.Status
	}
	webtest.WaitFor(t, 10*time.Second, "a-1 announced", func() bool { return status() == api.Passing })
	time.Sleep(3 * time.Second) // past the TTL: only heartbeats keep it passing
	if s := status(); s != api.Passing {
		t.Fatalf("a-1 is %q a TTL after it was announced, want passing", s)
	}
	cancel()
	<-announced
	if _, err := reg.Get(ctx, "sdk-announce", "a-1"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("Get after the announcement ended: %v, want ErrNotFound", err)
	}
}

func instanceIDs(set api.InstanceSet) []string {
	var ids []string
	for _, inst := range set.Instances {
		ids = append(ids, inst.Id)
	}
	return ids
}

// TestSDKElections drives the election service through the Go SDK and the
// gateway: a campaign leads, Observe sees it, a second candidate waiting
// in line leads once the first resigns, and the first's fence, accepted
// by the config service while it led, is refused once the second has
// written with its own.
func TestSDKElections(t *testing.T) {
	d := startDev(t)
	c := gatewaySDK(t, d, d.gateway)
	el := c.Elections()
	ctx := t.Context()
	const name = "sdk-lead"

	first, err := el.Campaign(ctx, name, "cand-1", sdk.CampaignOptions{TTL: 5 * time.Second, Value: map[string]string{"addr": "10.0.0.1:80"}})
	if err != nil {
		t.Fatal(err)
	}
	if first.Name() != name || first.Token() <= 0 || string(first.Value()) != `{"addr":"10.0.0.1:80"}` {
		t.Fatalf("leadership = %s token %d value %s", first.Name(), first.Token(), first.Value())
	}
	if l, err := el.Get(ctx, name); err != nil || l.Leader != "cand-1" || l.Token != first.Token() {
		t.Fatalf("Get = %+v, %v; want cand-1 with token %d", l, err, first.Token())
	}
	all, err := el.List(ctx)
	if err != nil || !slices.ContainsFunc(all, func(l api.Leadership) bool { return l.Name == name && l.Token == first.Token() }) {
		t.Fatalf("List = %+v, %v; want %s led with token %d", all, err, name, first.Token())
	}
	if _, err := el.Campaign(ctx, name, "cand-2", sdk.CampaignOptions{NoWait: true}); !errors.Is(err, sdk.ErrTaken) || !errors.Is(err, sdk.ErrConflict) {
		t.Fatalf("a campaign that does not wait while cand-1 leads: %v, want ErrTaken (a 409)", err)
	}

	type event struct {
		typ    string
		leader string
		token  int64
	}
	var (
		mu     sync.Mutex
		events []event
	)
	octx, stop := context.WithCancel(ctx)
	defer stop()
	observed := make(chan struct{})
	go func() {
		defer close(observed)
		for ev, err := range el.Observe(octx, name) {
			if err != nil {
				return
			}
			e := event{typ: ev.Type}
			if ev.Leadership != nil {
				e.leader, e.token = ev.Leadership.Leader, ev.Leadership.Token
			}
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}
	}()
	has := func(want event) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(events, want) }
	}
	webtest.WaitFor(t, 10*time.Second, "Observe seeing cand-1 lead", has(event{"current", "cand-1", first.Token()}))

	fenced := func(l *sdk.Leadership) error {
		_, err := c.KV().Put(ctx, "/sdk-lead/report", l.Fence(), sdk.WithFence(l.Fence()))
		return err
	}
	if err := fenced(first); err != nil {
		t.Fatalf("a write fenced by the leader: %v", err)
	}

	type won struct {
		l   *sdk.Leadership
		err error
	}
	second := make(chan won, 1)
	go func() {
		l, err := el.Campaign(ctx, name, "cand-2", sdk.CampaignOptions{TTL: 5 * time.Second})
		second <- won{l, err}
	}()
	webtest.WaitFor(t, 10*time.Second, "cand-2 in line", func() bool {
		l, err := el.Get(ctx, name)
		return err == nil && l.Queue == 1
	})
	if err := first.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(first.Err(), sdk.ErrResigned) {
		t.Fatalf("Err after Resign = %v, want ErrResigned", first.Err())
	}
	w := <-second
	if w.err != nil {
		t.Fatal(w.err)
	}
	defer func() { _ = w.l.Resign(context.Background()) }()
	if w.l.Token() <= first.Token() {
		t.Fatalf("cand-2's token %d is not above cand-1's %d", w.l.Token(), first.Token())
	}
	webtest.WaitFor(t, 10*time.Second, "Observe seeing cand-1 resign and cand-2 elected", func() bool {
		return has(event{"resigned", "cand-1", first.Token()})() && has(event{"elected", "cand-2", w.l.Token()})()
	})

	if err := fenced(w.l); err != nil {
		t.Fatalf("a write fenced by the new leader: %v", err)
	}
	if err := fenced(first); !errors.Is(err, sdk.ErrConflict) {
		t.Fatalf("a write fenced by the resigned leader after the new one wrote: %v, want refused (409)", err)
	}
	if kv, err := c.KV().Get(ctx, "/sdk-lead/report"); err != nil || string(kv.Value) != `"`+w.l.Fence()+`"` {
		t.Fatalf("the fenced key = %+v, %v; want the new leader's write", kv, err)
	}
	stop()
	<-observed
}
