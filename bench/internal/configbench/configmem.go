package configbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/bench/internal/harness"
)

// configMemReport is the memory of a config replica holding many keys.
type configMemReport struct {
	keys, valueSize, perTxn, loaders int
	loadTook                         time.Duration
	revision                         int64
	sampled                          int
	empty, loaded, afterGC           harness.ChildStats
}

// configMemTxnOps is how many puts one POST /v1/txn carries (the API's
// limit is kv.MaxTxnOps, 128).
const configMemTxnOps = 128

// RunMemory runs a config replica in a child process, connected over
// TCP to a NATS server in this process (fsync off: the load is faster and
// the replica's memory does not depend on it), loads cfg.configMemKeys keys
// through POST /v1/txn from several concurrent clients here, and reads the
// child's memory.
func RunMemory(ctx context.Context, log *slog.Logger, cfg harness.Config) (*configMemReport, error) {
	rep := &configMemReport{keys: cfg.ConfigMemKeys, valueSize: cfg.ConfigMemValueSize, perTxn: configMemTxnOps, loaders: 8}
	if err := harness.WithNATS(cfg, "config-mem", false, func(ns *harness.NATSServer) error { return rep.measure(ctx, log, cfg, ns) }); err != nil {
		return nil, err
	}
	return rep, nil
}

// measure loads the keys into a child replica connected to ns and reads
// the child's memory.
func (rep *configMemReport) measure(ctx context.Context, log *slog.Logger, cfg harness.Config, ns *harness.NATSServer) error {
	child, err := startConfigChild(ctx, ns.URL, harness.ChildProfile(cfg, "mem-child"), false)
	if err != nil {
		return err
	}
	defer child.Stop()
	if rep.empty, err = child.Stats(true); err != nil {
		return err
	}
	h := harness.NewHTTPTarget(cfg.HTTPClient, []string{child.URL}, rep.loaders)
	defer h.Close()

	value := harness.JSONValue(rep.valueSize)
	txns := (rep.keys + rep.perTxn - 1) / rep.perTxn
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	var lastRev atomic.Int64
	var wg sync.WaitGroup
	log.Info("config memory: loading keys through POST /v1/txn", "keys", rep.keys, "value_size", rep.valueSize,
		"puts_per_txn", rep.perTxn, "clients", rep.loaders)
	start := time.Now()
	for range rep.loaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body bytes.Buffer
			for lctx.Err() == nil {
				t := int(next.Add(1) - 1)
				if t >= txns {
					return
				}
				first, last := t*rep.perTxn, min((t+1)*rep.perTxn, rep.keys)
				rev, err := loadTxn(lctx, h, child.URL, &body, first, last, value)
				if err != nil {
					cancel(fmt.Errorf("txn of keys %d..%d: %w", first, last-1, err))
					return
				}
				for { // keep the highest revision seen
					old := lastRev.Load()
					if rev <= old || lastRev.CompareAndSwap(old, rev) {
						break
					}
				}
				done.Add(int64(last - first))
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for tenth := int64(1); ; {
		select {
		case <-finished:
		case <-tick.C:
			if d := done.Load(); d*10/int64(rep.keys) >= tenth {
				tenth = d*10/int64(rep.keys) + 1
				log.Info("config memory: loading", "keys", d, "of", rep.keys, "elapsed", harness.SinceRounded(start).Round(time.Second))
			}
			continue
		}
		break
	}
	if err := context.Cause(lctx); err != nil {
		return err
	}
	rep.loadTook, rep.revision = time.Since(start), lastRev.Load()
	log.Info("config memory: loaded", "keys", rep.keys, "took", rep.loadTook.Round(time.Millisecond))

	// Every key is there: read a spread sample back.
	const samples = 100
	for i := range samples {
		k := int64(i) * int64(rep.keys) / samples
		if err := h.Get("/m/"+strconv.FormatInt(k, 10), true)(ctx, 0); err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		rep.sampled++
	}
	if rep.loaded, err = child.Stats(false); err != nil {
		return err
	}
	if rep.afterGC, err = child.Stats(true); err != nil {
		return err
	}
	log.Info("config memory measured", "rss_mib", rep.loaded.RSS>>20, "rss_after_gc_mib", rep.afterGC.RSS>>20,
		"heap_inuse_after_gc_mib", rep.afterGC.HeapInuse>>20)
	return nil
}

// loadTxn POSTs one transaction putting keys /m/<first> .. /m/<last-1> and
// returns its revision; every put must succeed.
func loadTxn(ctx context.Context, h *harness.HTTPTarget, base string, body *bytes.Buffer, first, last int, value []byte) (int64, error) {
	body.Reset()
	body.WriteString(`{"compare":[],"failure":[],"success":[`)
	for k := first; k < last; k++ {
		if k > first {
			body.WriteByte(',')
		}
		body.WriteString(`{"put":{"key":"/m/`)
		body.WriteString(strconv.Itoa(k))
		body.WriteString(`","value":`)
		body.Write(value)
		body.WriteString(`}}`)
	}
	body.WriteString(`]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/txn", bytes.NewReader(body.Bytes()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST /v1/txn: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var out struct {
		Succeeded bool              `json:"succeeded"`
		Results   []json.RawMessage `json:"results"`
		Revision  int64             `json:"revision"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, fmt.Errorf("decode the txn answer: %w", err)
	}
	if !out.Succeeded || len(out.Results) != last-first {
		return 0, fmt.Errorf("txn answered succeeded=%v with %d results, want true and %d", out.Succeeded, len(out.Results), last-first)
	}
	return out.Revision, nil
}

func PrintMemory(out io.Writer, rep *configMemReport, err error) {
	if !harness.PrintHeading(out, "Config service: memory", rep != nil, err) {
		return
	}
	fmt.Fprintf(out, "  one replica (config.Serve) in a child process, connected over TCP to NATS (fsync off) in this process;\n"+
		"  %s keys (/m/<n>) of %d-byte JSON values loaded through HTTP, POST /v1/txn with %d puts each, from %d concurrent\n"+
		"  clients in this process, in %s (%s keys/s); last revision %d; %d sampled keys read back.\n",
		harness.Count(rep.keys), rep.valueSize, rep.perTxn, rep.loaders, rep.loadTook.Round(time.Second),
		harness.Rate(float64(rep.keys)/rep.loadTook.Seconds()), rep.revision, rep.sampled)
	t := harness.NewTable("l r l l")
	t.Add("VmRSS, empty replica, after runtime.GC", harness.Mib(rep.empty.RSS), "", "")
	t.Add(fmt.Sprintf("VmRSS holding %s keys", harness.Count(rep.keys)), harness.Mib(rep.loaded.RSS), "target < 1 GiB", harness.Verdict(rep.loaded.RSS < 1<<30))
	t.Add("VmHWM (peak RSS)", harness.Mib(rep.loaded.HWM), "", "")
	t.Add("VmRSS after runtime.GC", harness.Mib(rep.afterGC.RSS), "", "")
	t.Add("Go heap in use after runtime.GC", harness.Mib(rep.afterGC.HeapInuse), "", "")
	t.Write(out)
}
