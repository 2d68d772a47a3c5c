package scaler_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// fakeWorkload is the API server for one Deployment (shop/web) and its
// controller: its scale subresource, and its pod template, whose image
// patch the controller rolls out a replica per look.
type fakeWorkload struct {
	mu                sync.Mutex
	image             string
	generation        int64
	replicas, updated int
	patches           []string
}

func (f *fakeWorkload) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case "/apis/apps/v1/namespaces/shop/deployments/web/scale":
		if r.Method == http.MethodPatch {
			var p struct{ Spec struct{ Replicas int } }
			_ = json.Unmarshal(body, &p)
			f.replicas = p.Spec.Replicas
		}
		fmt.Fprintf(w, `{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web","namespace":"shop","resourceVersion":"1"},"spec":{"replicas":%d},"status":{"replicas":%d}}`, f.replicas, f.replicas)
	case "/apis/apps/v1/namespaces/shop/deployments/web":
		switch r.Method {
		case http.MethodPatch:
			f.patches = append(f.patches, string(body))
			var p driver.Workload // the patch has the workload's shape
			_ = json.Unmarshal(body, &p)
			f.image = p.Spec.Template.Spec.Containers[0].Image
			f.generation++
			f.updated = 0
		default:
			f.updated = min(f.updated+1, f.replicas)
		}
		fmt.Fprintf(w, `{"metadata":{"generation":%d},"spec":{"replicas":%d,"template":{"spec":{"containers":[{"name":"web","image":%q}]}}},
			"status":{"observedGeneration":%d,"replicas":%d,"updatedReplicas":%d,"readyReplicas":%d,"availableReplicas":%d}}`,
			f.generation, f.replicas, f.image, f.generation, f.replicas, f.updated, f.replicas, f.replicas)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"kind":"Status","reason":"NotFound","message":"not found","code":404}`)
	}
}

// TestRolloutKubernetes: a changed image is set on the Deployment's pod
// template once, and the rollout follows the Deployment's status to
// Succeeded; the first PUT's image, already there, is not patched.
func TestRolloutKubernetes(t *testing.T) {
	fw := &fakeWorkload{image: "web:1", generation: 1, replicas: 3, updated: 3}
	srv := httptest.NewServer(fw)
	t.Cleanup(srv.Close)
	sa := t.TempDir()
	if err := os.WriteFile(filepath.Join(sa, "token"), []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	newDriver := func(spec driver.Spec, deps driver.Deps) (driver.Driver, error) {
		deps.ServiceAccountDir = sa
		return driver.New(spec, deps)
	}
	n := startNode(t, startPlane(t), "scaler-0", nodeOptions{newDriver: newDriver})
	spec := func(image string) string {
		return fmt.Sprintf(`{"service":"web","minReplicas":3,"maxReplicas":3,"syncPeriod":"1s",
			"metrics":[{"name":"gateway_rps","target":{"type":"averageValue","value":10}}],
			"driver":{"type":"kubernetes","name":"web","namespace":"shop","apiServer":%q,"image":%q,"version":%q}}`, srv.URL, image, image)
	}
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", spec("web:1")), 201)
	time.Sleep(2 * time.Second) // a decision or two, and the image check
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", spec("web:2")), 200)
	ro := waitRollout(t, n.url, "web", 30*time.Second)
	if ro.Phase != ledger.PhaseSucceeded || ro.To.Version != "web:2" {
		t.Fatalf("rollout = %+v", ro)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.patches) != 1 || fw.image != "web:2" || fw.updated != 3 {
		t.Fatalf("patches %q, image %s, %d updated: want one patch to web:2, rolled out", fw.patches, fw.image, fw.updated)
	}
}
