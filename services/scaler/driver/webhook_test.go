package driver_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/driver"
)

// receiver is a webhook endpoint as a user would write one: it checks
// the signature and the timestamp's age, fails the first failFirst
// POSTs with failStatus, records the bodies it accepts and answers GET
// with its count.
type receiver struct {
	secret     string
	failFirst  int
	failStatus int

	mu       sync.Mutex
	attempts int
	keys     []string // Idempotency-Key of every POST attempt
	bodies   []driver.WebhookRequest
	replicas int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts, err := strconv.ParseInt(r.Header.Get(driver.TimestampHeader), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		http.Error(w, "stale or missing timestamp", http.StatusUnauthorized)
		return
	}
	if r.Header.Get(driver.SignatureHeader) != driver.Sign([]byte(rc.secret), ts, body) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r.Method == http.MethodGet {
		fmt.Fprintf(w, `{"replicas":%d}`, rc.replicas)
		return
	}
	rc.attempts++
	rc.keys = append(rc.keys, r.Header.Get("Idempotency-Key"))
	if rc.attempts <= rc.failFirst {
		http.Error(w, "not now", rc.failStatus)
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want JSON", http.StatusUnsupportedMediaType)
		return
	}
	var req driver.WebhookRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.bodies = append(rc.bodies, req)
	rc.replicas = req.Replicas
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) stats() (int, []driver.WebhookRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.attempts, append([]driver.WebhookRequest(nil), rc.bodies...)
}

func newWebhook(t *testing.T, rc *receiver, spec driver.WebhookSpec) driver.Driver {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	spec.URL = srv.URL + "/scale"
	if spec.Secret == "" && spec.SecretEnv == "" {
		spec.Secret = rc.secret
	}
	if spec.Backoff == 0 {
		spec.Backoff = wire.Duration(time.Millisecond)
	}
	d, err := driver.New(driver.Spec{Type: driver.TypeWebhook, WebhookSpec: spec},
		driver.Deps{Service: "web", Getenv: func(k string) string { return map[string]string{"HOOK_SECRET": rc.secret}[k] }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.(*driver.Webhook).Close() })
	return d
}

func TestWebhookRetriesUntilAcknowledged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rc := &receiver{secret: "s3cret", failFirst: 2, failStatus: http.StatusServiceUnavailable}
	d := newWebhook(t, rc, driver.WebhookSpec{SecretEnv: "HOOK_SECRET", MaxAttempts: 3})

	if _, err := d.Current(ctx); !errors.Is(err, driver.ErrUnknown) {
		t.Errorf("Current() before any call = %v, want ErrUnknown", err)
	}
	res, err := d.Scale(ctx, 4, 7)
	if err != nil || res != (driver.Result{Previous: driver.Unknown, Replicas: 4, Detail: res.Detail}) {
		t.Fatalf("Scale(4) = %+v, %v; want unknown → 4", res, err)
	}
	attempts, bodies := rc.stats()
	if attempts != 3 {
		t.Errorf("%d attempts, want 3 (two failures, then success)", attempts)
	}
	if want := []driver.WebhookRequest{{Service: "web", Replicas: 4, Token: 7}}; fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Errorf("bodies = %v, want %v", bodies, want)
	}
	if n, err := d.Current(ctx); n != 4 || err != nil {
		t.Errorf("Current() = %d, %v; want the acknowledged 4", n, err)
	}
	if res, err := d.Scale(ctx, 2, 7); err != nil || res.Previous != 4 || res.Replicas != 2 {
		t.Errorf("Scale(2) = %+v, %v; want 4 → 2", res, err)
	}
	// The three attempts of the first call share one Idempotency-Key, so a
	// receiver can tell a retry from a new decision; the second call has
	// its own.
	rc.mu.Lock()
	keys := slices.Clone(rc.keys)
	rc.mu.Unlock()
	if len(keys) != 4 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] || keys[3] == keys[0] || keys[3] == "" {
		t.Errorf("Idempotency-Keys of the attempts = %q; want three alike, then a new one", keys)
	}
}

func TestWebhookFailures(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name         string
		rc           *receiver
		secret       string
		wantAttempts int
		wantErr      string
	}{
		{"gives up after maxAttempts", &receiver{secret: "s", failFirst: 100, failStatus: http.StatusBadGateway}, "", 3, "502 Bad Gateway: not now"},
		{"retries 429", &receiver{secret: "s", failFirst: 100, failStatus: http.StatusTooManyRequests}, "", 3, "429"},
		{"does not retry 4xx", &receiver{secret: "s", failFirst: 100, failStatus: http.StatusBadRequest}, "", 1, "400 Bad Request: not now"},
		{"wrong secret", &receiver{secret: "s"}, "other", 0, "401 Unauthorized: bad signature"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newWebhook(t, tt.rc, driver.WebhookSpec{Secret: tt.secret, MaxAttempts: 3})
			_, err := d.Scale(t.Context(), 3, 1)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Scale = %v, want an error with %q", err, tt.wantErr)
			}
			if attempts, bodies := tt.rc.stats(); attempts != tt.wantAttempts || len(bodies) != 0 {
				t.Errorf("%d attempts, %d accepted; want %d, 0", attempts, len(bodies), tt.wantAttempts)
			}
			if _, err := d.Current(t.Context()); !errors.Is(err, driver.ErrUnknown) {
				t.Errorf("Current() after a failure = %v, want ErrUnknown", err)
			}
		})
	}
}

func TestWebhookReadCurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rc := &receiver{secret: "s", replicas: 6}
	d := newWebhook(t, rc, driver.WebhookSpec{ReadCurrent: true})
	if n, err := d.Current(ctx); n != 6 || err != nil {
		t.Errorf("Current() = %d, %v; want 6 from the GET", n, err)
	}
	if res, err := d.Scale(ctx, 9, 1); err != nil || res.Previous != 6 || res.Replicas != 9 {
		t.Errorf("Scale(9) = %+v, %v; want 6 → 9", res, err)
	}
	if n, err := d.Current(ctx); n != 9 || err != nil {
		t.Errorf("Current() = %d, %v; want 9", n, err)
	}
}

func TestWebhookFenced(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rc := &receiver{secret: "s"}
	d := newWebhook(t, rc, driver.WebhookSpec{})
	if _, err := d.Scale(ctx, 2, 10); err != nil {
		t.Fatal(err)
	}
	if res, err := d.Scale(ctx, 8, 9); !errors.Is(err, driver.ErrFenced) || res != (driver.Result{}) {
		t.Errorf("Scale(8, token 9) after token 10 = %+v, %v; want ErrFenced", res, err)
	}
	if attempts, bodies := rc.stats(); attempts != 1 || len(bodies) != 1 || bodies[0].Token != 10 {
		t.Errorf("the receiver saw %d attempts, %v; want only token 10's", attempts, bodies)
	}
	if n, _ := d.Current(ctx); n != 2 {
		t.Errorf("Current() = %d, want 2", n)
	}
}

func TestWebhookSecretEnvUnset(t *testing.T) {
	t.Parallel()
	_, err := driver.New(driver.Spec{Type: driver.TypeWebhook, WebhookSpec: driver.WebhookSpec{URL: "http://h", SecretEnv: "NOPE"}},
		driver.Deps{Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("New = %v, want an error naming NOPE", err)
	}
}

func TestVerify(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"service":"web","replicas":3,"token":7}`)
	now := time.Unix(1_800_000_000, 0)
	signed := func(ts int64, key []byte) http.Header {
		h := http.Header{}
		h.Set(driver.TimestampHeader, strconv.FormatInt(ts, 10))
		h.Set(driver.SignatureHeader, driver.Sign(key, ts, body))
		return h
	}
	for name, tc := range map[string]struct {
		h    http.Header
		body []byte
		ok   bool
	}{
		"good":                   {signed(now.Unix(), secret), body, true},
		"a minute old":           {signed(now.Unix()-59, secret), body, true},
		"replayed later":         {signed(now.Unix()-120, secret), body, false},
		"from the future":        {signed(now.Unix()+120, secret), body, false},
		"other secret":           {signed(now.Unix(), []byte("other")), body, false},
		"body changed":           {signed(now.Unix(), secret), []byte(`{"service":"web","replicas":30,"token":7}`), false},
		"no headers":             {http.Header{}, body, false},
		"timestamp not a number": {http.Header{driver.TimestampHeader: {"soon"}, driver.SignatureHeader: {"sha256=00"}}, body, false},
	} {
		err := driver.Verify(secret, tc.h, tc.body, now, time.Minute)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Verify = %v, want ok %v", name, err, tc.ok)
		}
	}
}

// TestWebhookSendsTemplate: every call carries the template and version
// the driver was last given, so the receiver runs its replicas from it.
func TestWebhookSendsTemplate(t *testing.T) {
	rc := &receiver{secret: "s3cret"}
	d := newWebhook(t, rc, driver.WebhookSpec{Template: json.RawMessage(`{"image":"web:1"}`)})
	ctx := t.Context()
	if _, err := d.Scale(ctx, 2, 1); err != nil {
		t.Fatal(err)
	}
	d.(*driver.Webhook).SetTemplate(driver.Template{Version: "2", Body: json.RawMessage(`{"image":"web:2"}`)})
	if _, err := d.Scale(ctx, 2, 1); err != nil {
		t.Fatal(err)
	}
	_, bodies := rc.stats()
	if len(bodies) != 2 || string(bodies[0].Template) != `{"image":"web:1"}` || bodies[0].Version != "" ||
		string(bodies[1].Template) != `{"image":"web:2"}` || bodies[1].Version != "2" {
		t.Fatalf("bodies = %+v", bodies)
	}
}
