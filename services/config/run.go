package config

import (
	"net/http"
	"time"

	"github.com/stewardhq/steward/platform/advertise"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/config/kv"
)

// ServiceName names the log: stream STEWARD_CONFIG; replicas register
// themselves as steward-config.
const ServiceName = "config"

// expiryEvery is how often a replica looks for lapsed leases.
const expiryEvery = 500 * time.Millisecond

// Replica is one running replica of the service: its log, its key/value
// machine and its HTTP handler.
type Replica = service.Replica[*kv.Machine]

// Spec declares the service to the skeleton: the key/value machine
// keeping s.RetainRevisions revisions, lease expiry, the history archive
// and the API.
func Spec(s Settings) service.Spec[*kv.Machine] {
	store := kv.New(s.RetainRevisions)
	return service.Spec[*kv.Machine]{
		Name:          ServiceName,
		Machine:       store,
		MaxBatchBytes: maxBatchBytes,
		History:       true,
		Expiry:        service.Expiry{Every: expiryEvery, Due: store.DueExpiries},
		Announcer:     advertise.SelfAnnouncer,
		Handler: func(r *Replica) (http.Handler, error) {
			// A nil *pgstore.History in the interface would not be a nil archive.
			var archive historyArchive
			if r.History != nil {
				archive = r.History
			}
			return newServer(r.Log, r.Machine, archive, r.Logger, r.Secure), nil
		},
	}
}

// Open opens a replica on nc (service.Open); Serve opens one and serves
// its API on a listener until the context ends (service.Serve): main and
// `steward dev` both call it; Run is the standalone process (service.Run).
var (
	Open  = service.Opener(Spec)
	Serve = service.Server(Spec)
	Run   = service.Runner(Spec)
)
