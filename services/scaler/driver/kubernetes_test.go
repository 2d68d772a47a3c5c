package driver_test

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stewardhq/steward/services/scaler/driver"
)

// apiServer is shaped like the Kubernetes API server for the scale
// subresource: bearer token, paths, merge patch, Scale and Status
// objects. Workloads are keyed "namespace/resource/name".
type apiServer struct {
	mu        sync.Mutex
	token     string
	workloads map[string]int
	// versions is each workload's resourceVersion, bumped by every
	// change; a patch naming another version is a 409, as the API server
	// answers a failed precondition.
	versions map[string]int
	// raceAfterGet: the next GET of a workload is followed by a change by
	// someone else (another writer between the driver's read and patch).
	raceAfterGet bool
	patches      []string
}

var scalePath = regexp.MustCompile(`^/apis/apps/v1/namespaces/([^/]+)/(deployments|statefulsets)/([^/]+)/scale$`)

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		status(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	m := scalePath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		return
	}
	ns, resource, name := m[1], m[2], m[3]
	switch name {
	case "forbidden":
		status(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(`%s.apps "forbidden" is forbidden: User "system:serviceaccount:%s:scaler" cannot get resource "%s/scale" in API group "apps" in the namespace "%s"`, resource, ns, resource, ns))
		return
	}
	key := ns + "/" + resource + "/" + name
	replicas, ok := a.workloads[key]
	if !ok {
		status(w, http.StatusNotFound, "NotFound", fmt.Sprintf(`%s.apps "%s" not found`, resource, name))
		return
	}
	if a.versions == nil {
		a.versions = map[string]int{}
	}
	version := a.versions[key] + 1
	switch r.Method {
	case http.MethodGet:
		if a.raceAfterGet {
			a.raceAfterGet = false
			defer func() { a.versions[key]++ }()
		}
	case http.MethodPatch:
		if ct := r.Header.Get("Content-Type"); ct != "application/merge-patch+json" {
			status(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got %q", ct))
			return
		}
		body, _ := io.ReadAll(r.Body)
		a.patches = append(a.patches, string(body))
		if name == "conflict" {
			status(w, http.StatusConflict, "Conflict", `Operation cannot be fulfilled on deployments.apps "conflict": the object has been modified; please apply your changes to the latest version and try again`)
			return
		}
		var p struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
			Spec struct {
				Replicas *int `json:"replicas"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Spec.Replicas == nil {
			status(w, http.StatusBadRequest, "BadRequest", "bad patch")
			return
		}
		if v := p.Metadata.ResourceVersion; v != "" && v != strconv.Itoa(version) {
			status(w, http.StatusConflict, "Conflict", fmt.Sprintf(`Operation cannot be fulfilled on %s.apps %q: the object has been modified; please apply your changes to the latest version and try again`, resource, name))
			return
		}
		replicas = *p.Spec.Replicas
		a.workloads[key] = replicas
		a.versions[key]++
		version++
	default:
		status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	var s driver.Scale
	s.APIVersion, s.Kind = "autoscaling/v1", "Scale"
	s.Metadata.Name, s.Metadata.Namespace, s.Metadata.ResourceVersion = name, ns, strconv.Itoa(version)
	s.Spec.Replicas = replicas
	s.Status.Replicas = replicas - 1 // a rollout under way
	s.Status.Selector = "app=" + name
	json.NewEncoder(w).Encode(s)
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":%q,"code":%d}`, msg, reason, code)
}

func (a *apiServer) recorded() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.patches...)
}

// newCluster starts the API server and writes a service account
// directory (token, ca.crt, namespace) trusting it.
func newCluster(t *testing.T) (*apiServer, *httptest.Server, string) {
	t.Helper()
	api := &apiServer{token: "token-1", workloads: map[string]int{
		"shop/deployments/web": 2, "shop/statefulsets/db": 3, "shop/deployments/conflict": 1, "other/deployments/web": 7,
	}}
	srv := httptest.NewTLSServer(api)
	t.Cleanup(srv.Close)
	return api, srv, serviceAccount(t, srv)
}

// serviceAccount writes a service account directory (token-1, a CA
// that trusts srv, namespace shop) and returns it.
func serviceAccount(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	for name, content := range map[string][]byte{"token": []byte("token-1\n"), "ca.crt": ca, "namespace": []byte("shop")} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newKubernetes(t *testing.T, srv *httptest.Server, saDir string, spec driver.KubernetesSpec) driver.Driver {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	env := map[string]string{"KUBERNETES_SERVICE_HOST": u.Hostname(), "KUBERNETES_SERVICE_PORT": u.Port()}
	d, err := driver.New(driver.Spec{Type: driver.TypeKubernetes, KubernetesSpec: spec},
		driver.Deps{Service: "web", ServiceAccountDir: saDir, Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.(*driver.Kubernetes).Close() })
	return d
}

func TestKubernetesScaleInCluster(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	api, srv, dir := newCluster(t)
	// In-cluster: host from the environment, namespace from the service
	// account.
	d := newKubernetes(t, srv, dir, driver.KubernetesSpec{Name: "web"})
	if n, err := d.Current(ctx); n != 2 || err != nil {
		t.Errorf("Current() = %d, %v; want spec.replicas 2", n, err)
	}
	res, err := d.Scale(ctx, 5, 1)
	if err != nil || res.Previous != 2 || res.Replicas != 5 {
		t.Fatalf("Scale(5) = %+v, %v; want 2 → 5", res, err)
	}
	if want := "deployment shop/web: spec.replicas 2 → 5 (4 running)"; res.Detail != want {
		t.Errorf("Detail = %q, want %q", res.Detail, want)
	}
	// Already there: no PATCH.
	if res, err := d.Scale(ctx, 5, 1); err != nil || res.Previous != 5 || res.Replicas != 5 {
		t.Errorf("Scale(5) again = %+v, %v", res, err)
	}
	if got, want := api.recorded(), []string{`{"metadata":{"resourceVersion":"1"},"spec":{"replicas":5}}`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PATCH bodies = %q, want %q", got, want)
	}

	// kubelet rotates the token; the driver reads it afresh.
	api.mu.Lock()
	api.token = "token-2"
	api.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("token-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Current(ctx); n != 5 || err != nil {
		t.Errorf("Current() after rotation = %d, %v; want 5", n, err)
	}
}

func TestKubernetesStatefulSetExplicitServer(t *testing.T) {
	t.Parallel()
	api, srv, dir := newCluster(t)
	d, err := driver.New(driver.Spec{Type: driver.TypeKubernetes, KubernetesSpec: driver.KubernetesSpec{
		Kind: "StatefulSet", Name: "db", APIServer: srv.URL + "/"}},
		driver.Deps{ServiceAccountDir: dir, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.(*driver.Kubernetes).Close()
	if res, err := d.Scale(t.Context(), 1, 1); err != nil || res.Previous != 3 || res.Replicas != 1 {
		t.Errorf("Scale(1) = %+v, %v; want 3 → 1", res, err)
	}
	if got := api.recorded(); len(got) != 1 || got[0] != `{"metadata":{"resourceVersion":"1"},"spec":{"replicas":1}}` {
		t.Errorf("PATCH bodies = %q", got)
	}
}

func TestKubernetesErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, workload string
		token          string
		code           int
		message        string
	}{
		{"forbidden", "forbidden", "", 403, `cannot get resource "deployments/scale"`},
		{"not found", "gone", "", 404, `deployments.apps "gone" not found`},
		{"conflict", "conflict", "", 409, "the object has been modified"},
		{"bad token", "web", "stolen", 401, "Unauthorized"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, srv, dir := newCluster(t)
			if tt.token != "" {
				os.WriteFile(filepath.Join(dir, "token"), []byte(tt.token), 0o600)
			}
			d := newKubernetes(t, srv, dir, driver.KubernetesSpec{Name: tt.workload})
			_, err := d.Scale(t.Context(), 4, 1)
			var apiErr *driver.APIError
			if !errors.As(err, &apiErr) || apiErr.Code != tt.code || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("Scale = %v, want a %d naming %q", err, tt.code, tt.message)
			}
		})
	}
}

func TestKubernetesFenced(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	api, srv, dir := newCluster(t)
	d := newKubernetes(t, srv, dir, driver.KubernetesSpec{Name: "web", Namespace: "other"})
	if _, err := d.Scale(ctx, 8, 3); err != nil {
		t.Fatal(err)
	}
	if res, err := d.Scale(ctx, 1, 2); !errors.Is(err, driver.ErrFenced) || res != (driver.Result{}) {
		t.Errorf("Scale(1, token 2) after token 3 = %+v, %v; want ErrFenced", res, err)
	}
	if got := api.recorded(); len(got) != 1 {
		t.Errorf("PATCH bodies = %q, want only token 3's", got)
	}
	if n, _ := d.Current(ctx); n != 8 {
		t.Errorf("Current() = %d, want 8", n)
	}
}

func TestKubernetesNotInCluster(t *testing.T) {
	t.Parallel()
	_, _, dir := newCluster(t)
	_, err := driver.New(driver.Spec{Type: driver.TypeKubernetes, KubernetesSpec: driver.KubernetesSpec{Name: "web"}},
		driver.Deps{ServiceAccountDir: dir, Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("New = %v, want an error naming KUBERNETES_SERVICE_HOST", err)
	}
}

// TestKubernetesPreconditionHolds: a change by someone else between the
// driver's read and its patch (another controller, a person, a deposed
// scaler leader) makes the API server refuse the patch, so the driver
// never overwrites a count it did not see; the next call succeeds.
func TestKubernetesPreconditionHolds(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	api, srv, dir := newCluster(t)
	d := newKubernetes(t, srv, dir, driver.KubernetesSpec{Name: "web", Namespace: "other"})
	api.mu.Lock()
	api.raceAfterGet = true
	api.mu.Unlock()
	_, err := d.Scale(ctx, 6, 1)
	var apiErr *driver.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 409 || apiErr.Reason != "Conflict" {
		t.Fatalf("Scale with a change between read and patch = %v, want the API server's 409 Conflict", err)
	}
	if n, _ := d.Current(ctx); n == 6 {
		t.Fatal("the refused patch was applied")
	}
	if _, err := d.Scale(ctx, 6, 1); err != nil {
		t.Fatalf("Scale after re-reading = %v", err)
	}
	if n, _ := d.Current(ctx); n != 6 {
		t.Fatalf("Current() = %d, want 6", n)
	}
}
