package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Workload is the part of a Deployment or StatefulSet a rollout reads:
// its generations, replica counts and the pod template's containers.
type Workload struct {
	Metadata struct {
		Generation int64 `json:"generation"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int `json:"replicas"`
		Template struct {
			Spec struct {
				Containers []Container `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
	Status WorkloadStatus `json:"status"`
}

// Container is a pod template's container as a rollout reads and
// patches it: its name, image and environment.
type Container struct {
	Name  string   `json:"name"`
	Image string   `json:"image,omitempty"`
	Env   []EnvVar `json:"env,omitempty"`
}

// EnvVar is one of a container's environment variables; one set from a
// source (valueFrom) has no value here.
type EnvVar struct {
	Name      string          `json:"name"`
	Value     string          `json:"value,omitempty"`
	ValueFrom json.RawMessage `json:"valueFrom,omitempty"`
}

// WorkloadStatus is a Deployment's (or StatefulSet's) status as a
// rollout follows it.
type WorkloadStatus struct {
	ObservedGeneration int64 `json:"observedGeneration"`
	Replicas           int   `json:"replicas"`
	UpdatedReplicas    int   `json:"updatedReplicas"`
	ReadyReplicas      int   `json:"readyReplicas"`
	AvailableReplicas  int   `json:"availableReplicas"`
}

// RolloutState is what RollOut saw: the workload's status, its desired
// count, whether it was patched by this call, and whether the rollout is
// complete as `kubectl rollout status` judges it (the controller
// observed the new generation, every replica is updated and available,
// and no old one is left).
type RolloutState struct {
	WorkloadStatus
	Desired  int
	Patched  bool
	Complete bool
}

// RollOut sets t's image on the pod template's container (t.Container,
// or the first) if it is not already there, and returns the workload's
// rollout state: the Deployment or StatefulSet controller does the
// rolling, with its own strategy, and the scaler follows it. Fenced like
// Scale.
func (k *Kubernetes) RollOut(ctx context.Context, t Template, token int64) (RolloutState, error) {
	k.scaleM.Lock()
	defer k.scaleM.Unlock()
	if err := k.fence.admit(token); err != nil {
		return RolloutState{}, err
	}
	if t.Image == "" {
		return RolloutState{}, fmt.Errorf("kubernetes driver: the template has no image")
	}
	w, err := k.workload(ctx, nil)
	if err != nil {
		return RolloutState{}, err
	}
	cs := w.Spec.Template.Spec.Containers
	i := 0
	if t.Container != "" {
		i = -1
		for j, c := range cs {
			if c.Name == t.Container {
				i = j
			}
		}
	}
	if i < 0 || i >= len(cs) {
		return RolloutState{}, fmt.Errorf("kubernetes driver: %s has no container %q", k.what, t.Container)
	}
	st := RolloutState{}
	if env := envChanges(cs[i].Env, t.Env); cs[i].Image != t.Image || len(env) > 0 {
		// A strategic merge patch merges containers, and a container's
		// env, by name: only this container's image and the variables
		// the template names change.
		patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []Container{{Name: cs[i].Name, Image: t.Image, Env: env}}}}}})
		if w, err = k.workload(ctx, patch); err != nil {
			return RolloutState{}, err
		}
		st.Patched = true
		k.log.Info("pod template set", "workload", k.what, "container", cs[i].Name, "image", t.Image, "env", len(env), "token", token)
	}
	st.WorkloadStatus = w.Status
	st.Desired = 1
	if w.Spec.Replicas != nil {
		st.Desired = *w.Spec.Replicas
	}
	s := w.Status
	st.Complete = !st.Patched && s.ObservedGeneration >= w.Metadata.Generation &&
		s.UpdatedReplicas == st.Desired && s.Replicas == st.Desired && s.AvailableReplicas >= st.Desired
	return st, nil
}

// envChanges are the variables of want that the container's env does
// not have at that value, in name order. A variable the template does
// not name is left as it is; one set from a source (valueFrom) gets the
// value instead, its valueFrom removed (null in a merge patch).
func envChanges(have []EnvVar, want map[string]string) []EnvVar {
	var out []EnvVar
	for _, name := range slices.Sorted(maps.Keys(want)) {
		i := slices.IndexFunc(have, func(e EnvVar) bool { return e.Name == name })
		if i >= 0 && have[i].Value == want[name] && len(have[i].ValueFrom) == 0 {
			continue
		}
		e := EnvVar{Name: name, Value: want[name]}
		if i >= 0 && len(have[i].ValueFrom) > 0 {
			e.ValueFrom = json.RawMessage("null")
		}
		out = append(out, e)
	}
	return out
}

// workload GETs the workload, or PATCHes it with patch (a strategic
// merge patch).
func (k *Kubernetes) workload(ctx context.Context, patch []byte) (*Workload, error) {
	method := http.MethodGet
	if patch != nil {
		method = http.MethodPatch
	}
	body, err := k.request(ctx, method, strings.TrimSuffix(k.url, "/scale"), "application/strategic-merge-patch+json", patch)
	if err != nil {
		return nil, err
	}
	var w Workload
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("kubernetes driver: %s %s: want the workload, got %.200q", method, k.what, body)
	}
	return &w, nil
}
