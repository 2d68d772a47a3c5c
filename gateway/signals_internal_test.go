package gateway

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway/proxy"
)

// TestVersionSignals is the wire form of the per-version samples, as the
// scaler's metrics.Push reads it.
func TestVersionSignals(t *testing.T) {
	since := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	now := since.Add(time.Hour)
	cum := make([]uint64, len(proxy.UpstreamBounds()))
	for i := range cum {
		cum[i] = min(uint64(i*3), 12)
	}
	got := versionSignals("gateway-0", map[string][]proxy.VersionCounts{
		"web":            {{Version: "v2", Since: since, Requests: 12, Failures: 1, Cumulative: cum}},
		"steward-scaler": {{Version: "v1", Since: since, Requests: 5, Cumulative: cum}},
	}, now)
	if len(got) != 1 {
		t.Fatalf("versionSignals = %d samples, want 1 (none for steward-scaler)", len(got))
	}
	b, err := json.Marshal(got[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"service":"web","instance":"gateway-0","name":"gateway_upstream_requests","value":12,"timestamp":"2026-03-01T12:00:00Z",` +
		`"upstream":{"version":"v2","since":"2026-03-01T11:00:00Z","failures":1,"latency":[{"le":0.0005,"count":0},{"le":0.001,"count":3},{"le":0.002,"count":6},` +
		`{"le":0.004,"count":9},{"le":0.008,"count":12},{"le":0.016,"count":12},{"le":0.032,"count":12},{"le":0.064,"count":12},{"le":0.128,"count":12},` +
		`{"le":0.256,"count":12},{"le":0.512,"count":12},{"le":1.024,"count":12},{"le":2.048,"count":12},{"le":4.096,"count":12},{"le":8.192,"count":12},{"le":16.384,"count":12}]}}`
	if string(b) != want {
		t.Fatalf("Marshal = %s\nwant      %s", b, want)
	}
}
