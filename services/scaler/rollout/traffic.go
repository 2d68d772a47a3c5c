// Package rollout holds what a rollout does outside the scaler's state
// machine: traffic weights written as a gateway route document.
package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// RouteName is the route document that splits service's traffic by
// version during a rollout: the key sdk.RoutesPrefix+RouteName(service).
func RouteName(service string) string { return "rollout-" + service }

// routeDoc is the part of the gateway's route document (gateway/route)
// a rollout writes. The route takes /s/{service}/... as the gateway's
// built-in route does (the prefix stripped, idempotent requests retried
// once elsewhere), and splits it by version; a configured route is
// matched before the built-in one.
type routeDoc struct {
	Match       routeMatch   `json:"match"`
	Service     string       `json:"service"`
	StripPrefix bool         `json:"stripPrefix"`
	Retry       routeRetry   `json:"retry"`
	Split       []routeSplit `json:"split"`
}

type routeMatch struct {
	PathPrefix string `json:"pathPrefix"`
}

type routeRetry struct {
	Attempts int `json:"attempts"`
}

type routeSplit struct {
	Version string `json:"version"`
	Weight  int    `json:"weight"`
}

// maxWeight is the gateway's bound on a split weight.
const maxWeight = 1_000_000

// SetWeights sends service's traffic through the gateway to its
// instances by version, in proportion to weights (e.g. {"v1": 90, "v2":
// 10}; a version at 0 gets none; instances of versions not named get
// none either), by writing the route document RouteName(service). Every
// gateway applies it within moments. The write carries fence (the
// scaler's leadership, sdk.Leadership.Fence) so that a deposed leader's
// write is refused (sdk.ErrConflict); a document already as wanted is
// not written again. Only requests to /s/{service}/ are split: other
// routes to the service keep their own documents.
func SetWeights(ctx context.Context, kv sdk.KV, service string, weights map[string]int, fence string) error {
	doc, err := splitDoc(service, weights)
	if err != nil {
		return err
	}
	key := sdk.RoutesPrefix + RouteName(service)
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	held, err := kv.Get(ctx, key)
	switch {
	case err == nil && bytes.Equal(compact(held.Value), body):
		return nil
	case err != nil && !errors.Is(err, sdk.ErrNotFound):
		return fmt.Errorf("read route %s: %w", RouteName(service), err)
	}
	if _, err := kv.Put(ctx, key, json.RawMessage(body), sdk.WithFence(fence)); err != nil {
		return fmt.Errorf("write route %s: %w", RouteName(service), err)
	}
	return nil
}

// ClearWeights removes the split: service's traffic is balanced over all
// its instances again, whatever their version. Fenced as SetWeights; no
// document is not an error.
func ClearWeights(ctx context.Context, kv sdk.KV, service, fence string) error {
	err := kv.Delete(ctx, sdk.RoutesPrefix+RouteName(service), sdk.WithFence(fence))
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return fmt.Errorf("delete route %s: %w", RouteName(service), err)
	}
	return nil
}

// splitDoc builds the route document, its split in version order (the
// same weights make the same bytes); it refuses what the gateway would
// reject, which would leave the previous split in force.
func splitDoc(service string, weights map[string]int) (routeDoc, error) {
	if err := catalog.ValidateService(service); err != nil {
		return routeDoc{}, err
	}
	doc := routeDoc{Match: routeMatch{PathPrefix: "/s/" + service + "/"}, Service: service, StripPrefix: true, Retry: routeRetry{Attempts: 2}}
	total := 0
	for _, v := range slices.Sorted(maps.Keys(weights)) {
		w := weights[v]
		if v == "" || w < 0 || w > maxWeight {
			return routeDoc{}, fmt.Errorf("weights of %s: version %q at %d: want a version and a weight from 0 to %d", service, v, w, maxWeight)
		}
		doc.Split = append(doc.Split, routeSplit{Version: v, Weight: w})
		total += w
	}
	if total == 0 {
		return routeDoc{}, fmt.Errorf("weights of %s: %v add up to 0; ClearWeights removes the split", service, weights)
	}
	return doc, nil
}

// compact is v without insignificant white space, or v when it is not
// JSON (then it differs from any document SetWeights writes).
func compact(v []byte) []byte {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return v
	}
	return b.Bytes()
}
