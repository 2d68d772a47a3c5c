package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/stewardhq/steward/services/scaler/driver"
)

// The scaler workload: a scaler whose webhook driver points at a receiver
// the suite runs, driven up and down by a pushed service-wide metric. The
// receiver verifies each call's signature and fences on its token, as the
// README asks of receivers. Checked: every call the receiver accepted
// carries out a decision recorded under the same token with the same
// count, and no recorded decision was carried out more often than it was
// recorded (across leader failovers too).
const (
	scaledService = "chaos-scaled"
	scaledMetric  = "chaos_load"
	scalerSecret  = "chaos-webhook-secret"
	scalerPhase   = 10 * time.Second
)

// webhookCall is one POST the receiver got.
type webhookCall struct {
	At       time.Time
	Token    int64
	Replicas int
	Key      string // the driver's Idempotency-Key: the same on its retries of one call
	Accepted bool   // false: refused (an older token than one already accepted, or a bad signature)
	Why      string // why it was refused
}

type scalerWorkload struct {
	s   *suite
	ln  net.Listener
	srv *http.Server

	mu      sync.Mutex
	counts  counts
	current int
	newest  int64
	calls   []webhookCall
	badSigs int
}

func newScalerWorkload(s *suite) (*scalerWorkload, error) {
	ln, err := net.Listen("tcp", s.c.net.bridgeIP.String()+":0")
	if err != nil {
		return nil, err
	}
	w := &scalerWorkload{s: s, ln: ln, current: 1}
	w.srv = &http.Server{Handler: http.HandlerFunc(w.receive), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = w.srv.Serve(ln) }()
	return w, nil
}

func (w *scalerWorkload) close() { _ = w.srv.Close() }

// receive is the webhook: GET answers the current count (readCurrent),
// POST sets it if signed and not fenced.
func (w *scalerWorkload) receive(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.Method == http.MethodGet {
		_ = json.NewEncoder(rw).Encode(map[string]int{"replicas": w.current})
		return
	}
	body, _ := readAll(r.Body)
	call := webhookCall{At: time.Now(), Key: r.Header.Get("Idempotency-Key")}
	var req driver.WebhookRequest
	switch {
	case driver.Verify([]byte(scalerSecret), r.Header, body, time.Now(), 5*time.Minute) != nil:
		w.badSigs++
		call.Why = "bad signature"
		http.Error(rw, "bad signature", http.StatusUnauthorized)
	case json.Unmarshal(body, &req) != nil || req.Service != scaledService:
		call.Why = fmt.Sprintf("bad body %q", body)
		http.Error(rw, "bad body", http.StatusBadRequest)
	case req.Token < w.newest:
		call.Token, call.Replicas = req.Token, req.Replicas
		call.Why = fmt.Sprintf("token %d older than %d", req.Token, w.newest)
		http.Error(rw, call.Why, http.StatusConflict)
	default:
		call.Token, call.Replicas, call.Accepted = req.Token, req.Replicas, true
		w.newest, w.current = req.Token, req.Replicas
		rw.WriteHeader(http.StatusOK)
	}
	w.calls = append(w.calls, call)
}

func (w *scalerWorkload) spec() string {
	return fmt.Sprintf(`{"service":%q,"minReplicas":1,"maxReplicas":8,"syncPeriod":"1s",
 "metrics":[{"name":%q,"target":{"type":"averageValue","value":10}}],
 "behavior":{"scaleUp":{"stabilizationWindow":"0s","policies":[{"type":"Pods","value":2,"period":"1s"}]},
             "scaleDown":{"stabilizationWindow":"0s","policies":[{"type":"Pods","value":2,"period":"1s"}]}},
 "driver":{"type":"webhook","url":"http://%s/scale","secret":%q,"readCurrent":true,"timeout":"3s"}}`,
		scaledService, scaledMetric, w.ln.Addr(), scalerSecret)
}

// setup puts the scaler (retrying up to 30 s).
func (w *scalerWorkload) setup(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(uint64(w.s.o.seed), 0x5ca1))
	r := w.s.eventually(ctx, 30*time.Second, func() reply {
		r := w.s.do(ctx, http.MethodPut, w.s.c.url("scaler", rng.IntN(w.s.c.nodes()))+"/v1/scalers/"+scaledService, nil, []byte(w.spec()), opTimeout)
		if r.status == http.StatusCreated {
			r.status = http.StatusOK
		}
		return r
	})
	if r.err != nil || r.status != http.StatusOK {
		return fmt.Errorf("put scaler %s: %d %s %v", scaledService, r.status, r.body, r.err)
	}
	return nil
}

func (w *scalerWorkload) run(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.push(ctx)
	}()
}

// push sends the service-wide metric every second to a random replica, in
// phases that ask for 6, 2, 4 and 1 replicas (a total over a target
// average of 10).
func (w *scalerWorkload) push(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(w.s.o.seed), 0x9054))
	phases := []float64{60, 20, 40, 10}
	start := time.Now()
	for sleepCtx(ctx, time.Second) {
		v := phases[int(time.Since(start)/scalerPhase)%len(phases)]
		body := fmt.Sprintf(`{"samples":[{"service":%q,"name":%q,"value":%g}]}`, scaledService, scaledMetric, v)
		r := w.s.do(ctx, http.MethodPost, w.s.c.url("scaler", rng.IntN(w.s.c.nodes()))+"/v1/metrics", nil, []byte(body), 3*time.Second)
		w.mu.Lock()
		w.counts.tally(r, r.err == nil && r.status/100 == 2)
		w.mu.Unlock()
	}
}

// decisionJSON is the part of a recorded decision the check reads.
type decisionJSON struct {
	Revision        int64     `json:"revision"`
	At              time.Time `json:"at"`
	Token           int64     `json:"token"`
	Leader          string    `json:"leader"`
	CurrentReplicas int       `json:"currentReplicas"`
	DesiredReplicas int       `json:"desiredReplicas"`
	Actuation       *struct {
		Replicas int    `json:"replicas"`
		Error    string `json:"error"`
	} `json:"actuation"`
}

// check compares the receiver's accepted calls with the recorded
// decisions.
func (w *scalerWorkload) check(ctx context.Context) counts {
	var decisions []decisionJSON
	var lastErr error
	for node := range w.s.c.nodes() {
		r := w.s.do(ctx, http.MethodGet, w.s.c.url("scaler", node)+"/v1/scalers/"+scaledService+"/decisions?limit=1000", nil, nil, opTimeout)
		if r.err == nil && r.status == http.StatusOK {
			var page struct {
				Items []decisionJSON `json:"items"`
			}
			if lastErr = json.Unmarshal(r.body, &page); lastErr == nil {
				decisions = page.Items
				break
			}
		} else {
			lastErr = fmt.Errorf("scaler-%d: %d %s %v", node, r.status, r.body, r.err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.counts
	if decisions == nil {
		c.Violations++
		c.Notes = append(c.Notes, fmt.Sprintf("could not read the decisions: %v", lastErr))
		return c
	}
	type tr struct {
		token    int64
		replicas int
	}
	recorded := map[tr]int{}
	tokens := map[int64]string{}
	for _, d := range decisions {
		if d.DesiredReplicas != d.CurrentReplicas {
			recorded[tr{d.Token, d.DesiredReplicas}]++
		}
		tokens[d.Token] = d.Leader
	}
	// With the newest 1000 decisions only, calls older than the oldest of
	// them have nothing to be compared with.
	var since time.Time
	if len(decisions) >= 1000 {
		for _, d := range decisions {
			if since.IsZero() || d.At.Before(since) {
				since = d.At
			}
		}
		since = since.Add(5 * time.Second)
	}
	accepted := map[tr]int{}
	retries := map[tr]int{} // the driver's retries (same Idempotency-Key) of a call it had carried out
	seen := map[string]bool{}
	refused := 0
	for _, call := range w.calls {
		if call.At.Before(since) {
			continue
		}
		if !call.Accepted {
			refused++
			c.Notes = append(c.Notes, fmt.Sprintf("the receiver refused a call at %s: %s", call.At.Format("15:04:05.000"), call.Why))
			continue
		}
		k := tr{call.Token, call.Replicas}
		// A receiver deduplicates on the Idempotency-Key, as one should:
		// a retry of a call it carried out (whose answer was lost) is the
		// same actuation, not another.
		if call.Key != "" && seen[call.Key] {
			retries[k]++
			continue
		}
		seen[call.Key] = call.Key != ""
		accepted[k]++
	}
	if w.badSigs > 0 {
		c.Violations += w.badSigs
	}
	keys := slices.SortedFunc(mapKeys(accepted), func(a, b tr) int {
		if a.token != b.token {
			return int(a.token - b.token)
		}
		return a.replicas - b.replicas
	})
	for _, k := range keys {
		n, rec := accepted[k], recorded[k]
		switch {
		case rec == 0:
			c.Violations++
			c.Notes = append(c.Notes, fmt.Sprintf("an actuation to %d replicas under token %d has no recorded decision", k.replicas, k.token))
		case n > rec:
			c.Violations++
			why := ""
			if retries[k] > 0 {
				why = fmt.Sprintf(" (besides %d retries with an Idempotency-Key already seen, not counted)", retries[k])
			}
			c.Notes = append(c.Notes, fmt.Sprintf("DOUBLE ACTUATION: %d replicas under token %d (%s) carried out %d times for %d recorded decisions%s", k.replicas, k.token, tokens[k.token], n, rec, why))
		}
	}
	c.Notes = append(c.Notes, fmt.Sprintf("%d decisions read (%d scaling), %d webhook calls accepted, %d refused, %d leader tokens",
		len(decisions), sumValues(recorded), sumValues(accepted), refused, len(tokens)))
	if len(decisions) >= 1000 {
		c.Notes = append(c.Notes, "only the newest 1000 decisions were compared, with the calls from "+since.Format("15:04:05")+" on")
	}
	return c
}

func sumValues[K comparable](m map[K]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
