package merge

import (
	"os"
	"path/filepath"
)

// Services are the services whose documents the gateway's joins, in the
// order of the result's tags, with their prefixes.
var Services = []struct{ Dir, Prefix string }{
	{"config", "Config"},
	{"registry", "Registry"},
	{"election", "Election"},
	{"scaler", "Scaler"},
}

// Files merges the gateway's part at own with each service's
// api/openapi.json under servicesDir.
func Files(own, servicesDir string) ([]byte, error) {
	b, err := os.ReadFile(own)
	if err != nil {
		return nil, err
	}
	parts := []Part{{Prefix: "Gateway", Doc: b, Own: true}}
	for _, s := range Services {
		b, err := os.ReadFile(filepath.Join(servicesDir, s.Dir, "api", "openapi.json"))
		if err != nil {
			return nil, err
		}
		parts = append(parts, Part{Prefix: s.Prefix, Doc: b})
	}
	return Merge(parts)
}
