package gateway

import (
	"net/http"
	"slices"
	"strings"

	"github.com/stewardhq/steward/gateway/discovery"
	"github.com/stewardhq/steward/platform/web"
)

// upstreamsAnswer is the answer of GET /gateway/upstreams: the balancer's
// state of every service the gateway holds a pool for (one a request
// used lately), sorted by service.
type upstreamsAnswer struct {
	Services []upstreamService `json:"services"`
}

// upstreamService is one service's pool: the versions of its passing
// instances and the instances, sorted by id.
type upstreamService struct {
	Service   string             `json:"service"`
	Versions  []string           `json:"versions"`
	Instances []upstreamInstance `json:"instances"`
}

// upstreamInstance is one instance as the balancer sees it: whether
// outlier detection ejected it, its requests in flight and its peak-EWMA
// latency (0 before its first answer).
type upstreamInstance struct {
	ID       string  `json:"id"`
	Address  string  `json:"address"`
	Scheme   string  `json:"scheme"`
	Version  string  `json:"version"`
	Zone     string  `json:"zone"`
	Weight   int     `json:"weight"`
	Ejected  bool    `json:"ejected"`
	InFlight int64   `json:"inFlight"`
	EWMAMs   float64 `json:"ewmaMs"`
}

// upstreams answers GET /gateway/upstreams from disc's pools, as they are
// at the moment: nothing is counted for it on the request path.
func upstreams(disc *discovery.Discovery) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		out := upstreamsAnswer{Services: []upstreamService{}}
		for name, pool := range disc.Pools() {
			svc := upstreamService{Service: name, Versions: pool.Versions(), Instances: []upstreamInstance{}}
			if svc.Versions == nil {
				svc.Versions = []string{}
			}
			for _, ep := range pool.Endpoints() {
				in := ep.Instance()
				svc.Instances = append(svc.Instances, upstreamInstance{ID: in.ID, Address: ep.HostPort(), Scheme: ep.Scheme(),
					Version: in.Version, Zone: in.Zone, Weight: in.Weight, Ejected: ep.Ejected(), InFlight: ep.InFlight(),
					EWMAMs: ep.EWMA().Seconds() * 1000})
			}
			out.Services = append(out.Services, svc)
		}
		slices.SortFunc(out.Services, func(a, b upstreamService) int { return strings.Compare(a.Service, b.Service) })
		_ = web.Encode(w, http.StatusOK, out)
	})
}
