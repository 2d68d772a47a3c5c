package rollout

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stewardhq/steward/sdk"
)

func TestSplitDoc(t *testing.T) {
	for _, tt := range []struct {
		name    string
		service string
		weights map[string]int
		want    string // the document, or the start of the error
	}{
		{"canary at 10", "web", map[string]int{"v2": 10, "v1": 90},
			`{"match":{"pathPrefix":"/s/web/"},"service":"web","stripPrefix":true,"retry":{"attempts":2},"split":[{"version":"v1","weight":90},{"version":"v2","weight":10}]}`},
		{"a version at 0", "web", map[string]int{"v1": 100, "v2": 0},
			`{"match":{"pathPrefix":"/s/web/"},"service":"web","stripPrefix":true,"retry":{"attempts":2},"split":[{"version":"v1","weight":100},{"version":"v2","weight":0}]}`},
		{"all at 0", "web", map[string]int{"v1": 0, "v2": 0}, "weights of web: map[v1:0 v2:0] add up to 0"},
		{"none", "web", nil, "weights of web: map[] add up to 0"},
		{"negative", "web", map[string]int{"v1": -1, "v2": 5}, `weights of web: version "v1" at -1`},
		{"beyond the gateway's bound", "web", map[string]int{"v1": 1_000_001}, `weights of web: version "v1" at 1000001`},
		{"no version", "web", map[string]int{"": 1}, `weights of web: version "" at 1`},
		{"not a service name", "Web/x", map[string]int{"v1": 1}, "service"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := splitDoc(tt.service, tt.weights)
			if err != nil {
				if !strings.Contains(err.Error(), tt.want) || strings.HasPrefix(tt.want, "{") {
					t.Fatalf("splitDoc = %v, want %s", err, tt.want)
				}
				// SetWeights refuses it before any call (a zero KV would panic).
				if err := SetWeights(t.Context(), sdk.KV{}, tt.service, tt.weights, "x:1"); err == nil {
					t.Fatal("SetWeights = nil, want the same error")
				}
				return
			}
			b, _ := json.Marshal(doc)
			if string(b) != tt.want {
				t.Fatalf("splitDoc = %s, want %s", b, tt.want)
			}
		})
	}
}
