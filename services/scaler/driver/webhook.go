package driver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Headers of a webhook request. The signature is HMAC-SHA256 over
// "<timestamp>.<body>" with the shared secret, hex-encoded after
// "sha256="; the timestamp is Unix seconds. Covering the timestamp lets
// the receiver refuse a replayed request whose timestamp is old, and the
// token in the body lets it refuse a deposed leader's.
const (
	SignatureHeader = "X-Steward-Signature"
	TimestampHeader = "X-Steward-Timestamp"
)

// Sign returns the X-Steward-Signature value for a body sent at ts, for
// receivers written in Go and for tests.
func Sign(secret []byte, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature is Verify's answer to a request that is not signed with
// the secret, or whose timestamp is too old or too far ahead.
var ErrBadSignature = errors.New("webhook: bad or stale signature")

// Verify checks a webhook request as a receiver written in Go should:
// the X-Steward-Signature over its timestamp and body (compared in
// constant time), and the timestamp within maxAge of now either way, so
// that a captured request cannot be replayed later. The body's token is
// the receiver's to fence on.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, maxAge time.Duration) error {
	ts, err := strconv.ParseInt(h.Get(TimestampHeader), 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if age := now.Sub(time.Unix(ts, 0)); age > maxAge || age < -maxAge {
		return ErrBadSignature
	}
	if !hmac.Equal([]byte(h.Get(SignatureHeader)), []byte(Sign(secret, ts, body))) {
		return ErrBadSignature
	}
	return nil
}

// WebhookRequest is the body POSTed to the webhook.
type WebhookRequest struct {
	Service  string `json:"service"`
	Replicas int    `json:"replicas"`
	Token    int64  `json:"token"`
	// Version and Template are the spec's template (driver.version,
	// driver.template), sent with every call so the receiver runs the
	// replicas from it; a change of them is a rollout it carries out.
	Version  string          `json:"version,omitempty"`
	Template json.RawMessage `json:"template,omitempty"`
}

// Webhook tells an HTTP endpoint the replica count it should run.
type Webhook struct {
	spec    WebhookSpec
	secret  []byte
	svc     string
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
	backoff time.Duration
	tries   int
	timeout time.Duration
	fence   fence
	scaleM  sync.Mutex // serialises Scale
	calls   uint64     // Scale calls so far, under scaleM: part of each call's Idempotency-Key
	nonce   string     // this driver's incarnation, the rest of the key

	mu    sync.Mutex
	acked int      // the last acknowledged count, or Unknown
	tmpl  Template // what each call sends
}

// SetTemplate sets the template the next calls send.
func (w *Webhook) SetTemplate(t Template) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tmpl = t
}

// NewWebhook returns a webhook driver; New validates the spec first.
func NewWebhook(spec WebhookSpec, deps Deps) (*Webhook, error) {
	deps.defaults()
	secret := spec.Secret
	if spec.SecretEnv != "" {
		if secret = deps.Getenv(spec.SecretEnv); secret == "" {
			return nil, fmt.Errorf("webhook driver: secretEnv %s is empty or unset", spec.SecretEnv)
		}
	}
	w := &Webhook{
		spec: spec, secret: []byte(secret), svc: deps.Service, client: deps.HTTPClient, now: time.Now,
		log:     deps.Logger.With("driver", TypeWebhook, "service", deps.Service),
		backoff: spec.Backoff.Std(), tries: spec.MaxAttempts, timeout: spec.Timeout.Std(), acked: Unknown,
		nonce: strconv.FormatInt(time.Now().UnixNano(), 36),
		tmpl:  Template{Body: spec.Template},
	}
	if w.client == nil {
		w.client = &http.Client{}
	}
	if w.backoff == 0 {
		w.backoff = DefaultBackoff
	}
	if w.tries == 0 {
		w.tries = DefaultMaxAttempts
	}
	if w.timeout == 0 {
		w.timeout = DefaultTimeout
	}
	return w, nil
}

// Current GETs the URL if readCurrent is set, or returns the last
// acknowledged count (ErrUnknown before the first).
func (w *Webhook) Current(ctx context.Context) (int, error) {
	if !w.spec.ReadCurrent {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.acked == Unknown {
			return 0, ErrUnknown
		}
		return w.acked, nil
	}
	var out struct {
		Replicas *int `json:"replicas"`
	}
	body, err := w.do(ctx, http.MethodGet, nil, "")
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Replicas == nil {
		return 0, fmt.Errorf("webhook driver: GET %s: want {\"replicas\": n}, got %.200q", w.spec.URL, body)
	}
	return *out.Replicas, nil
}

// Scale POSTs the count, retrying with exponential backoff on network
// errors, 5xx and 429, and returns when it is acknowledged (any 2xx).
func (w *Webhook) Scale(ctx context.Context, replicas int, token int64) (Result, error) {
	if replicas < 0 {
		return Result{}, fmt.Errorf("webhook driver: replicas %d is negative", replicas)
	}
	w.scaleM.Lock()
	defer w.scaleM.Unlock()
	if err := w.fence.admit(token); err != nil {
		return Result{}, err
	}
	prev := Unknown
	if w.spec.ReadCurrent {
		// A failing GET should not stop the scale: Previous is for the
		// record, the POST is what matters.
		if n, err := w.Current(ctx); err == nil {
			prev = n
		}
	} else {
		w.mu.Lock()
		prev = w.acked
		w.mu.Unlock()
	}
	w.mu.Lock()
	tmpl := w.tmpl
	w.mu.Unlock()
	body, _ := json.Marshal(WebhookRequest{Service: w.svc, Replicas: replicas, Token: token, Version: tmpl.Version, Template: tmpl.Body})
	// Every attempt of one call carries the same key, so a receiver can
	// tell the driver's retry of a call whose answer was lost (and which
	// it may have carried out) from a new decision to the same count.
	w.calls++
	key := fmt.Sprintf("%d-%s-%d", token, w.nonce, w.calls)
	if _, err := w.do(ctx, http.MethodPost, body, key); err != nil {
		return Result{Previous: prev, Replicas: prev}, err
	}
	w.mu.Lock()
	w.acked = replicas
	w.mu.Unlock()
	return Result{Previous: prev, Replicas: replicas, Detail: "acknowledged by " + w.spec.URL}, nil
}

// Close releases idle connections.
func (w *Webhook) Close() error {
	w.client.CloseIdleConnections()
	return nil
}

// do sends one signed request, retrying, and returns the 2xx body.
func (w *Webhook) do(ctx context.Context, method string, body []byte, idempotencyKey string) ([]byte, error) {
	delay := w.backoff
	var last error
	for attempt := 1; ; attempt++ {
		out, retry, err := w.once(ctx, method, body, idempotencyKey)
		if err == nil {
			return out, nil
		}
		last = fmt.Errorf("webhook driver: %s %s: attempt %d of %d: %w", method, w.spec.URL, attempt, w.tries, err)
		if !retry || attempt >= w.tries {
			return nil, last
		}
		w.log.Warn("webhook failed; retrying", "method", method, "attempt", attempt, "in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, errors.Join(last, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// once sends one attempt, signed afresh so its timestamp is current.
func (w *Webhook) once(ctx context.Context, method string, body []byte, idempotencyKey string) (out []byte, retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, w.spec.URL, bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	ts := w.now().Unix()
	req.Header.Set(TimestampHeader, strconv.FormatInt(ts, 10))
	req.Header.Set(SignatureHeader, Sign(w.secret, ts, body))
	req.Header.Set("Accept", "application/json")
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), err
	}
	defer resp.Body.Close()
	out, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, true, err
	}
	if resp.StatusCode/100 == 2 {
		return out, false, nil
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
	return nil, retry, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(out)))
}
