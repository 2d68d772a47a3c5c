package driver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Kubernetes reads and patches the scale subresource of a Deployment or
// StatefulSet through the API server, as the pod's service account,
// with plain REST: the scaler needs two calls, not client-go.
type Kubernetes struct {
	url    string // .../namespaces/{ns}/{resource}/{name}/scale
	what   string // "deployment ns/name", for messages
	saDir  string
	client *http.Client
	log    *slog.Logger
	fence  fence
	scaleM sync.Mutex
}

// Scale is the autoscaling/v1 Scale object, the fields the driver reads.
type Scale struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string `json:"name"`
		Namespace       string `json:"namespace"`
		ResourceVersion string `json:"resourceVersion,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Replicas int `json:"replicas"`
	} `json:"spec"`
	Status struct {
		Replicas int    `json:"replicas"`
		Selector string `json:"selector,omitempty"`
	} `json:"status"`
}

// APIError is a refusal from the API server, carrying its Status
// object's reason and message ("deployments.apps \"web\" not found").
type APIError struct {
	Code    int
	Reason  string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("kubernetes API: %d %s: %s", e.Code, e.Reason, e.Message)
}

// NewKubernetes returns a kubernetes driver; New validates the spec
// first. It reads the cluster CA and, unless the spec names one, the
// namespace now, and the token on every request: kubelet rotates it.
func NewKubernetes(spec KubernetesSpec, deps Deps) (*Kubernetes, error) {
	deps.defaults()
	kind := spec.Kind
	if kind == "" {
		kind = DefaultKind
	}
	ns := spec.Namespace
	if ns == "" {
		b, err := os.ReadFile(filepath.Join(deps.ServiceAccountDir, "namespace"))
		if err != nil {
			return nil, fmt.Errorf("kubernetes driver: no namespace in the spec and none from the service account: %w", err)
		}
		ns = strings.TrimSpace(string(b))
	}
	server := strings.TrimSuffix(spec.APIServer, "/")
	if server == "" {
		host, port := deps.Getenv("KUBERNETES_SERVICE_HOST"), deps.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("kubernetes driver: KUBERNETES_SERVICE_HOST and _PORT are unset (not in a cluster?) and the spec names no apiServer")
		}
		server = "https://" + net.JoinHostPort(host, port)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	switch ca, err := os.ReadFile(filepath.Join(deps.ServiceAccountDir, "ca.crt")); {
	case err == nil:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("kubernetes driver: %s holds no PEM certificate", filepath.Join(deps.ServiceAccountDir, "ca.crt"))
		}
		tlsConf.RootCAs = pool
	case errors.Is(err, fs.ErrNotExist) && spec.APIServer != "":
		// An explicit API server outside the cluster: the system roots.
	default:
		return nil, fmt.Errorf("kubernetes driver: cluster CA: %w", err)
	}
	resource := strings.ToLower(kind) + "s"
	return &Kubernetes{
		url:    fmt.Sprintf("%s/apis/apps/v1/namespaces/%s/%s/%s/scale", server, ns, resource, spec.Name),
		what:   fmt.Sprintf("%s %s/%s", strings.ToLower(kind), ns, spec.Name),
		saDir:  deps.ServiceAccountDir,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, Proxy: http.ProxyFromEnvironment}, Timeout: DefaultTimeout},
		log:    deps.Logger.With("driver", TypeKubernetes, "service", deps.Service),
	}, nil
}

// Current returns the scale's spec.replicas, the count asked for, as
// HPA does: status.replicas lags during a rollout, and scaling from it
// would undo a change not yet carried out.
func (k *Kubernetes) Current(ctx context.Context) (int, error) {
	s, err := k.call(ctx, http.MethodGet, nil)
	if err != nil {
		return 0, err
	}
	return s.Spec.Replicas, nil
}

// Scale reads the scale, then merge-patches spec.replicas with the
// resourceVersion it read as a precondition: if anyone changed the scale
// in between (a person, another controller, a deposed scaler leader),
// the API server refuses the patch with 409 and nothing is overwritten
// unseen; the next sync reads again and decides afresh.
func (k *Kubernetes) Scale(ctx context.Context, replicas int, token int64) (Result, error) {
	if replicas < 0 {
		return Result{}, fmt.Errorf("kubernetes driver: replicas %d is negative", replicas)
	}
	k.scaleM.Lock()
	defer k.scaleM.Unlock()
	if err := k.fence.admit(token); err != nil {
		return Result{}, err
	}
	before, err := k.call(ctx, http.MethodGet, nil)
	if err != nil {
		return Result{Previous: Unknown, Replicas: Unknown}, err
	}
	res := Result{Previous: before.Spec.Replicas, Replicas: before.Spec.Replicas}
	if before.Spec.Replicas == replicas {
		res.Detail = fmt.Sprintf("%s: already %d (%d running)", k.what, replicas, before.Status.Replicas)
		return res, nil
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]string{"resourceVersion": before.Metadata.ResourceVersion},
		"spec":     map[string]int{"replicas": replicas},
	})
	after, err := k.call(ctx, http.MethodPatch, patch)
	if err != nil {
		return res, err
	}
	res.Replicas = after.Spec.Replicas
	res.Detail = fmt.Sprintf("%s: spec.replicas %d → %d (%d running)", k.what, before.Spec.Replicas, after.Spec.Replicas, after.Status.Replicas)
	k.log.Info("scaled", "workload", k.what, "from", res.Previous, "to", res.Replicas, "token", token)
	return res, nil
}

// Close releases idle connections.
func (k *Kubernetes) Close() error {
	k.client.CloseIdleConnections()
	return nil
}

// call GETs the scale subresource, or merge-patches it with patch.
func (k *Kubernetes) call(ctx context.Context, method string, patch []byte) (*Scale, error) {
	body, err := k.request(ctx, method, k.url, "application/merge-patch+json", patch)
	if err != nil {
		return nil, err
	}
	var s Scale
	if err := json.Unmarshal(body, &s); err != nil || s.Kind != "Scale" {
		return nil, fmt.Errorf("kubernetes driver: %s %s: want a Scale object, got %.200q", method, k.what, body)
	}
	return &s, nil
}

// request sends one request to the API server with the service
// account's token (read each time: it is rotated) and returns the 2xx
// body, or the API's Status as an *APIError. body, if not nil, is sent
// as contentType.
func (k *Kubernetes) request(ctx context.Context, method, url, contentType string, body []byte) ([]byte, error) {
	token, err := os.ReadFile(filepath.Join(k.saDir, "token"))
	if err != nil {
		return nil, fmt.Errorf("kubernetes driver: service account token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("kubernetes driver: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kubernetes driver: %s %s: %w", method, k.what, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("kubernetes driver: %s %s: %w", method, k.what, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("kubernetes driver: %s %s: %w", method, k.what, apiError(resp.StatusCode, out))
	}
	return out, nil
}

// apiError reads a Kubernetes Status from an error answer's body.
func apiError(code int, body []byte) *APIError {
	apiErr := &APIError{Code: code, Reason: http.StatusText(code), Message: strings.TrimSpace(string(body))}
	var st struct {
		Kind    string `json:"kind"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		apiErr.Reason, apiErr.Message = st.Reason, st.Message
	}
	return apiErr
}
