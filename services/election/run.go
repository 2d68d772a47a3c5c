package election

import (
	"net/http"
	"time"

	"github.com/stewardhq/steward/platform/advertise"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/election/lease"
)

// ServiceName names the log: stream STEWARD_ELECTION; replicas register
// themselves as steward-election.
const ServiceName = "election"

// ExpiryInterval is how often a replica looks for lapsed leases and
// places in line and proposes their expiry. A lapsed lease ends at the
// first command on its election after the deadline anyway; the interval
// bounds how long a lapsed lease with nobody else touching the election
// (a crashed leader and its waiting successor) lingers: failover takes
// the TTL plus at most this plus one commit.
const ExpiryInterval = 100 * time.Millisecond

// Replica is one running replica of the service: its log, its lease
// machine and its HTTP handler.
type Replica = service.Replica[*lease.Machine]

// Spec declares the service to the skeleton: the lease machine, the
// expiry of lapsed leases and places in line, and the API.
func Spec(Settings) service.Spec[*lease.Machine] {
	m := lease.New()
	return service.Spec[*lease.Machine]{
		Name:          ServiceName,
		Machine:       m,
		MaxBatchBytes: maxBatchBytes,
		Expiry:        service.Expiry{Every: ExpiryInterval, Due: m.Due},
		Announcer:     advertise.SelfAnnouncer,
		Handler: func(r *Replica) (http.Handler, error) {
			return newServer(r.Log, r.Machine, r.Logger, r.Secure), nil
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
