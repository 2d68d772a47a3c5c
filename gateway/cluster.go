package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

// clusterServices are Steward's replicated services, in the order GET
// /gateway/cluster lists them; each registers its replicas as
// steward-<name>.
var clusterServices = []string{"config", "registry", "election", "scaler"}

// Bounds of one GET /gateway/cluster: the whole answer within
// clusterTimeout, of which the registry's lists take clusterListTimeout
// at most; at most maxClusterReplicas replicas asked per service, so a
// request makes at most 4 + 4*16 calls, all at once.
const (
	clusterTimeout     = 2 * time.Second
	clusterListTimeout = time.Second
	maxClusterReplicas = 16
	// clusterFresh is how long one round's answer serves every request
	// after it: consoles in many tabs, each polling every 5 s, cost the
	// replicas one round a second at most.
	clusterFresh = time.Second
)

// cluster answers GET /gateway/cluster: each replicated service's
// replicas as the registry lists them (every status, not only passing)
// and as each replica says of itself (GET /status), and its stream. One
// round of asking serves every request while it runs and for
// clusterFresh after, so the replicas are asked at most once a second
// however many clients poll.
type cluster struct {
	registry sdk.Services
	client   *http.Client // calls: trusts STEWARD_TLS_CA_FILE
	token    string       // STEWARD_AUTH_TOKEN: the gateway's role reads metrics

	mu    sync.Mutex
	round *clusterRound // the latest round, running or done
}

// clusterRound is one round of asking the registry and the replicas,
// shared by every request that comes while it runs or within
// clusterFresh after it ended. ans and ended are set before done closes.
type clusterRound struct {
	done  chan struct{}
	ans   clusterAnswer
	ended time.Time
}

// fresh reports whether the round may answer a request now: running, or
// ended within clusterFresh.
func (rd *clusterRound) fresh() bool {
	select {
	case <-rd.done:
		return time.Since(rd.ended) < clusterFresh
	default:
		return true
	}
}

// clusterAnswer is the answer of GET /gateway/cluster.
type clusterAnswer struct {
	Services []clusterService `json:"services"`
}

// clusterService is one service. Stream is JetStream's account of its
// stream from the replica that saw it furthest; nil, with Error, when no
// replica could say.
type clusterService struct {
	Service  string             `json:"service"`
	Stream   *qlog.StreamStatus `json:"stream"`
	Replicas []clusterReplica   `json:"replicas"`
	Error    string             `json:"error"`
}

// clusterReplica is one replica: ID, URL and Health from the registry,
// the rest from the replica itself; Error says why that part is missing.
type clusterReplica struct {
	ID       string `json:"id"`
	URL      string `json:"url"`
	Health   string `json:"health"`
	Ready    bool   `json:"ready"`
	NotReady string `json:"notReady,omitempty"`
	Voter    bool   `json:"voter"`
	Revision int64  `json:"revision"`
	// AppliedSequence is how far the replica applied the stream; Lag is
	// the service's stream last sequence (the furthest any replica saw)
	// minus it, at least 0, so that a replica cut off from JetStream,
	// which cannot see how far the stream went, still shows its lag.
	AppliedSequence uint64 `json:"appliedSequence"`
	Lag             uint64 `json:"lag"`
	Error           string `json:"error"`
}

func (c *cluster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	rd := c.round
	if rd == nil || !rd.fresh() {
		rd = &clusterRound{done: make(chan struct{})}
		c.round = rd
		go c.ask(rd)
	}
	c.mu.Unlock()
	select {
	case <-rd.done:
		_ = web.Encode(w, http.StatusOK, rd.ans)
	case <-r.Context().Done():
		// The client left; the round goes on for the others (it ends
		// within clusterTimeout).
	}
}

// ask runs one round: every service at once, within clusterTimeout
// whoever asked.
func (c *cluster) ask(rd *clusterRound) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	rd.ans = clusterAnswer{Services: make([]clusterService, len(clusterServices))}
	var wg sync.WaitGroup
	for i, name := range clusterServices {
		wg.Go(func() { rd.ans.Services[i] = c.service(ctx, name) })
	}
	wg.Wait()
	rd.ended = time.Now()
	close(rd.done)
}

// service lists one service's replicas and asks each for its status.
func (c *cluster) service(ctx context.Context, name string) clusterService {
	out := clusterService{Service: name, Replicas: []clusterReplica{}}
	lctx, cancel := context.WithTimeout(ctx, clusterListTimeout)
	instances, _, err := c.registry.Instances(lctx, "steward-"+name, sdk.Query{})
	cancel()
	if err != nil {
		out.Error = "the registry's list of steward-" + name + ": " + err.Error()
		return out
	}
	if len(instances) == 0 {
		out.Error = "no replica of steward-" + name + " is registered"
		return out
	}
	slices.SortFunc(instances, func(a, b api.Instance) int { return cmp.Compare(a.Id, b.Id) })
	statuses := make([]*qlog.Status, len(instances))
	out.Replicas = make([]clusterReplica, len(instances))
	var wg sync.WaitGroup
	for i, in := range instances {
		rep := &out.Replicas[i]
		rep.ID, rep.Health, rep.URL = in.Id, string(in.Status), instanceURL(in)
		if i >= maxClusterReplicas {
			rep.Error = fmt.Sprintf("not asked: a request asks %d replicas of a service at most", maxClusterReplicas)
			continue
		}
		wg.Go(func() {
			st, err := c.status(ctx, rep.URL)
			if err != nil {
				rep.Error = err.Error()
				return
			}
			statuses[i] = st
			rep.Ready, rep.NotReady, rep.Voter = st.Ready, st.NotReady, st.Voter
			rep.Revision, rep.AppliedSequence = st.Revision, st.AppliedSequence
		})
	}
	wg.Wait()
	var last uint64
	answered, streamErr := false, ""
	for _, st := range statuses {
		if st == nil {
			continue
		}
		answered = true
		last = max(last, st.StreamLastSequence)
		if st.Stream != nil && (out.Stream == nil || st.Stream.LastSequence > out.Stream.LastSequence) {
			out.Stream = st.Stream
		} else if st.Stream == nil {
			streamErr = st.StreamError
		}
	}
	for i, st := range statuses {
		if st != nil {
			out.Replicas[i].Lag = uint64(max(int64(last)-int64(st.AppliedSequence), 0))
		}
	}
	switch {
	case !answered:
		out.Error = "no replica of steward-" + name + " answered"
	case out.Stream == nil:
		out.Error = "no replica could read the stream: " + streamErr
	}
	return out
}

// status asks the replica at base for its status, with the gateway's
// token.
func (c *cluster) status(ctx context.Context, base string) (*qlog.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+qloghttp.StatusPath, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s answered %d: %s", req.URL, res.StatusCode, strings.TrimSpace(string(body)))
	}
	var st qlog.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	return &st, nil
}

// instanceURL is the base URL of a registered instance: https when it
// says it serves TLS.
func instanceURL(in api.Instance) string {
	scheme := "http"
	if in.Metadata[sdk.SchemeKey] == "https" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(in.Address, strconv.Itoa(in.Port))
}
