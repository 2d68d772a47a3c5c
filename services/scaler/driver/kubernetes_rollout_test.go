package driver_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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
			d.images[c.Name] = c.Image
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
	out["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"] = []map[string]string{
		{"name": "app", "image": d.images["app"]}, {"name": "sidecar", "image": d.images["sidecar"]}}
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
