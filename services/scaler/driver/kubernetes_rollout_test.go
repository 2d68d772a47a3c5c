package driver_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stewardhq/steward/services/scaler/driver"
)

// deployment is shaped like the API server for one Deployment
// (shop/web, containers app and sidecar) and its controller: a patch of
// the pod template bumps the generation, and each GET after it moves the
// rollout one replica on (a surge of one, then updated and available),
// as the Deployment controller would between two looks.
type deployment struct {
	mu                           sync.Mutex
	images                       map[string]string
	env                          map[string][]driver.EnvVar
	generation, observed         int64
	replicas, updated, available int
	patches                      []string
	contentTypes                 []string
}

func (d *deployment) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer token-1" {
		status(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	if r.URL.Path != "/apis/apps/v1/namespaces/shop/deployments/web" {
		status(w, http.StatusNotFound, "NotFound", `deployments.apps "x" not found`)
		return
	}
	switch r.Method {
	case http.MethodGet:
		if d.observed < d.generation {
			d.observed = d.generation
		} else if d.updated < d.replicas {
			d.updated++
			d.available = d.updated
		}
	case http.MethodPatch:
		body, _ := io.ReadAll(r.Body)
		d.patches = append(d.patches, string(body))
		d.contentTypes = append(d.contentTypes, r.Header.Get("Content-Type"))
		var p driver.Workload // the patch has the workload's shape
		if err := json.Unmarshal(body, &p); err != nil {
			status(w, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		for _, c := range p.Spec.Template.Spec.Containers {
			if c.Image != "" {
				d.images[c.Name] = c.Image
			}
			for _, e := range c.Env { // merged by name; a null valueFrom removes it
				env := d.env[c.Name]
				i := slices.IndexFunc(env, func(h driver.EnvVar) bool { return h.Name == e.Name })
				if i < 0 {
					env, i = append(env, driver.EnvVar{Name: e.Name}), len(env)
				}
				env[i].Value = e.Value
				if string(e.ValueFrom) == "null" {
					env[i].ValueFrom = nil
				} else if len(e.ValueFrom) > 0 {
					env[i].ValueFrom = e.ValueFrom
				}
				d.env[c.Name] = env
			}
		}
		d.generation++
		d.updated, d.available = 0, d.replicas-1
	}
	running := d.replicas
	if d.updated < d.replicas && d.observed == d.generation && d.generation > 1 {
		running++ // the surge
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(`{"metadata":{},"spec":{"template":{"spec":{}}},"status":{}}`), &out)
	out["metadata"].(map[string]any)["generation"] = d.generation
	out["spec"].(map[string]any)["replicas"] = d.replicas
	out["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"] = []driver.Container{
		{Name: "app", Image: d.images["app"], Env: d.env["app"]}, {Name: "sidecar", Image: d.images["sidecar"], Env: d.env["sidecar"]}}
	out["status"] = map[string]any{"observedGeneration": d.observed, "replicas": running, "updatedReplicas": d.updated,
		"readyReplicas": d.available, "availableReplicas": d.available}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// TestKubernetesRollOut: RollOut patches only the named container's
// image (a strategic merge patch), once, then follows the Deployment's
// status until every replica is updated and available; it is fenced,
// and an unknown container is an error.
func TestKubernetesRollOut(t *testing.T) {
	t.Parallel()
	dep := &deployment{images: map[string]string{"app": "web:1", "sidecar": "proxy:1"}, generation: 1, observed: 1, replicas: 3, updated: 3, available: 3}
	srv := httptest.NewTLSServer(dep)
	t.Cleanup(srv.Close)
	d := newKubernetes(t, srv, serviceAccount(t, srv), driver.KubernetesSpec{Name: "web"}).(*driver.Kubernetes)
	ctx := t.Context()
	tmpl := driver.Template{Version: "2", Image: "web:2", Container: "app"}

	st, err := d.RollOut(ctx, driver.Template{Image: "web:1", Container: "app"}, 1)
	if err != nil || st.Patched || !st.Complete {
		t.Fatalf("RollOut(the image it runs) = %+v, %v; want complete without a patch", st, err)
	}
	var steps []driver.RolloutState
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatalf("not complete after %d looks: %+v", i, steps)
		}
		st, err := d.RollOut(ctx, tmpl, 2)
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, st)
		if st.Complete {
			break
		}
	}
	if !steps[0].Patched || steps[0].Complete || len(steps) < 3 {
		t.Errorf("steps = %+v, want a patch, progress, then complete", steps)
	}
	for i, st := range steps[1:] {
		if st.Patched {
			t.Errorf("step %d patched again", i+1)
		}
	}
	dep.mu.Lock()
	if len(dep.patches) != 1 || dep.images["app"] != "web:2" || dep.images["sidecar"] != "proxy:1" ||
		dep.contentTypes[0] != "application/strategic-merge-patch+json" || !strings.Contains(dep.patches[0], `"name":"app"`) {
		t.Errorf("patches %q (%q), images %v: want one strategic merge patch of app's image", dep.patches, dep.contentTypes, dep.images)
	}
	dep.mu.Unlock()
	if _, err := d.RollOut(ctx, tmpl, 1); !errors.Is(err, driver.ErrFenced) {
		t.Errorf("RollOut with an older token = %v, want ErrFenced", err)
	}
	if _, err := d.RollOut(ctx, driver.Template{Image: "x:1", Container: "nope"}, 2); err == nil || !strings.Contains(err.Error(), `no container "nope"`) {
		t.Errorf("RollOut on a container the pod has not = %v", err)
	}
}

// TestKubernetesRollOutEnv: the template's env is set on the named
// container, in one patch with the image, merged by name: variables it
// does not name stay, one set from a source gets the value instead (its
// valueFrom removed), the other container is untouched; an env already
// as wanted patches nothing.
func TestKubernetesRollOutEnv(t *testing.T) {
	t.Parallel()
	dep := &deployment{images: map[string]string{"app": "web:1", "sidecar": "proxy:1"}, generation: 1, observed: 1, replicas: 2, updated: 2, available: 2,
		env: map[string][]driver.EnvVar{
			"app":     {{Name: "LOG_LEVEL", Value: "info"}, {Name: "DB_URL", ValueFrom: json.RawMessage(`{"secretKeyRef":{"name":"db","key":"url"}}`)}, {Name: "KEEP", Value: "1"}},
			"sidecar": {{Name: "LOG_LEVEL", Value: "warn"}}}}
	srv := httptest.NewTLSServer(dep)
	t.Cleanup(srv.Close)
	d := newKubernetes(t, srv, serviceAccount(t, srv), driver.KubernetesSpec{Name: "web"}).(*driver.Kubernetes)
	ctx := t.Context()
	if st, err := d.RollOut(ctx, driver.Template{Image: "web:1", Container: "app", Env: map[string]string{"LOG_LEVEL": "info"}}, 1); err != nil || st.Patched {
		t.Fatalf("RollOut(the env it has) = %+v, %v; want no patch", st, err)
	}
	want := driver.Template{Image: "web:1", Container: "app", Env: map[string]string{"LOG_LEVEL": "debug", "DB_URL": "postgres://db/x"}}
	st, err := d.RollOut(ctx, want, 1)
	if err != nil || !st.Patched {
		t.Fatalf("RollOut(a new env) = %+v, %v; want a patch", st, err)
	}
	if st, err := d.RollOut(ctx, want, 1); err != nil || st.Patched {
		t.Fatalf("RollOut(the same env again) = %+v, %v; want no patch", st, err)
	}
	dep.mu.Lock()
	defer dep.mu.Unlock()
	if len(dep.patches) != 1 || strings.Contains(dep.patches[0], "KEEP") || strings.Contains(dep.patches[0], "sidecar") {
		t.Errorf("patches = %q, want one naming only app's changed variables", dep.patches)
	}
	wantApp := []driver.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}, {Name: "DB_URL", Value: "postgres://db/x"}, {Name: "KEEP", Value: "1"}}
	if got, _ := json.Marshal(dep.env["app"]); string(got) != string(must(json.Marshal(wantApp))) {
		t.Errorf("app's env = %s, want %s", got, must(json.Marshal(wantApp)))
	}
	if got := dep.env["sidecar"]; len(got) != 1 || got[0].Value != "warn" {
		t.Errorf("sidecar's env = %+v, want it untouched", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
