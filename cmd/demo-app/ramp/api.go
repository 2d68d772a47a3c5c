package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The parts of the scaler's and the registry's answers the demo reads.
// They are declared here rather than imported from the services so the
// demo stays a plain HTTP client with no dependency on their modules.
type (
	scalerView struct {
		Status struct {
			CurrentReplicas int       `json:"currentReplicas"`
			DesiredReplicas int       `json:"desiredReplicas"`
			LastDecision    *decision `json:"lastDecision"`
			DriverError     string    `json:"driverError"`
		} `json:"status"`
	}
	decision struct {
		Revision        int64            `json:"revision"`
		At              time.Time        `json:"at"`
		CurrentReplicas int              `json:"currentReplicas"`
		DesiredReplicas int              `json:"desiredReplicas"`
		Reason          string           `json:"reason"`
		Error           string           `json:"error"`
		Metrics         []metricDecision `json:"metrics"`
		Actuation       *struct {
			At     time.Time `json:"at"`
			Result *struct {
				Previous int    `json:"previous"`
				Replicas int    `json:"replicas"`
				Detail   string `json:"detail"`
			} `json:"result"`
			Error string `json:"error"`
		} `json:"actuation"`
	}
	metricDecision struct {
		Name     string  `json:"name"`
		Usage    float64 `json:"usage"`
		Target   float64 `json:"target"`
		Proposal int     `json:"proposal"`
		Error    string  `json:"error"`
	}
	decisionList struct {
		Items []decision `json:"items"`
	}
	// rolloutView is GET /v1/scalers/{name}/rollout (the schema Rollout).
	rolloutView struct {
		Strategy string `json:"strategy"`
		To       struct {
			Version string `json:"version"`
		} `json:"to"`
		Phase      string          `json:"phase"`
		Message    string          `json:"message"`
		Failure    string          `json:"failure"`
		StartedAt  time.Time       `json:"startedAt"`
		FinishedAt time.Time       `json:"finishedAt"`
		Versions   []versionStatus `json:"versions"`
		Canary     *canaryStatus   `json:"canary"`
	}
	// versionStatus is one template's instances (VersionStatus).
	versionStatus struct {
		Version   string `json:"version"`
		Running   int    `json:"running"`
		Ready     int    `json:"ready"`
		Available int    `json:"available"`
		Draining  int    `json:"draining"`
	}
	// canaryStatus is where a canary stands (CanaryStatus): weights are
	// relative, by version.
	canaryStatus struct {
		Step     int            `json:"step"`
		Weights  map[string]int `json:"weights"`
		Analyses []analysisRun  `json:"analyses"`
		Budget   *struct {
			Requests int64 `json:"requests"`
			Failures int64 `json:"failures"`
		} `json:"budget"`
	}
	// analysisRun is one judgement of a canary (AnalysisRun).
	analysisRun struct {
		Step    int       `json:"step"`
		At      time.Time `json:"at"`
		Verdict string    `json:"verdict"`
		Failed  []string  `json:"failed"`
		Message string    `json:"message"`
	}
	// instance is the part of a registry instance the demo reads.
	instance struct {
		Status  string  `json:"status"`
		Version *string `json:"version"`
	}
)

// api calls Steward's HTTP APIs.
type api struct {
	client           *http.Client
	registry, scaler string
}

func newAPI(registry, scaler string) *api {
	return &api{client: &http.Client{Timeout: 5 * time.Second}, registry: registry, scaler: scaler}
}

// scalerSpec is the scaler the demo puts: the demo app run by the process
// driver, scaled on the gateway's request rate and on CPU.
func scalerSpec(app, registryURL string, work time.Duration) map[string]any {
	return map[string]any{
		"service":     service,
		"minReplicas": minReplicas,
		"maxReplicas": maxReplicas,
		"syncPeriod":  syncPeriod.String(),
		"metrics": []map[string]any{
			{"name": "gateway_rps", "target": map[string]any{"type": "averageValue", "value": rpsTarget}},
			{"name": "process_cpu_seconds_total:rate", "target": map[string]any{"type": "averageValue", "value": cpuTarget}},
		},
		"behavior": map[string]any{
			"scaleDown": map[string]any{"stabilizationWindow": scaleDownWindow.String()},
		},
		"driver": processDriver(app, registryURL, service, work),
	}
}

// processDriver is the process driver running the demo app as svc.
func processDriver(app, registryURL, svc string, work time.Duration) map[string]any {
	return map[string]any{
		"type":    "process",
		"command": []string{app},
		"env": map[string]string{
			"STEWARD_REGISTRY_URL": registryURL,
			"STEWARD_DEMO_SERVICE": svc,
			"STEWARD_DEMO_WORK":    work.String(),
			// One core per replica, as a pod with a CPU limit of 1
			// would have: a replica saturates, and more replicas help.
			"GOMAXPROCS": "1",
		},
		"gracePeriod": gracePeriod.String(),
	}
}

// putScaler creates the scaler, retrying while the scaler service is not
// ready yet (it answers 503 until its log has caught up).
func (a *api) putScaler(ctx context.Context, name string, spec map[string]any) error {
	body, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, a.scaler+"/v1/scalers/"+name, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := a.client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				return nil
			case resp.StatusCode/100 == 4:
				return fmt.Errorf("PUT /v1/scalers/%s: %s: %s", name, resp.Status, b)
			}
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PUT /v1/scalers/%s: %w", name, err)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// sleep waits for d, or less when ctx ends first, and says so.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (a *api) getJSON(ctx context.Context, url string, v any) error {
	return a.call(ctx, http.MethodGet, url, v)
}

// call sends a request without a body and decodes a 200's answer into v
// (nil: any 2xx, its body unread); another status is an error.
func (a *api) call(ctx context.Context, method, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ok := resp.StatusCode/100 == 2 && (v == nil || resp.StatusCode == http.StatusOK); !ok {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (a *api) scalerStatus(ctx context.Context) (scalerView, error) {
	var v scalerView
	err := a.getJSON(ctx, a.scaler+"/v1/scalers/"+scalerName, &v)
	return v, err
}

// decisions returns the newest n decisions, newest first.
func (a *api) decisions(ctx context.Context, n int) ([]decision, error) {
	var l decisionList
	err := a.getJSON(ctx, fmt.Sprintf("%s/v1/scalers/%s/decisions?limit=%d", a.scaler, scalerName, n), &l)
	return l.Items, err
}

// rawDecisions is the decisions endpoint's answer as it came, indented,
// for a report when the demo fails.
func (a *api) rawDecisions(ctx context.Context, n int) string {
	var v any
	if err := a.getJSON(ctx, fmt.Sprintf("%s/v1/scalers/%s/decisions?limit=%d", a.scaler, scalerName, n), &v); err != nil {
		return err.Error()
	}
	b, _ := json.MarshalIndent(v, "  ", "  ")
	return "  " + string(b)
}

// passing counts the demo service's passing instances in the registry.
func (a *api) passing(ctx context.Context) (int, error) {
	list, err := a.passingInstances(ctx, service)
	return len(list), err
}

// passingInstances lists svc's passing instances in the registry.
func (a *api) passingInstances(ctx context.Context, svc string) ([]instance, error) {
	var list []instance
	err := a.getJSON(ctx, a.registry+"/v1/services/"+svc+"/instances?status=passing", &list)
	return list, err
}

// rollout is the scaler's newest rollout (404 before its first change).
func (a *api) rollout(ctx context.Context, name string) (rolloutView, error) {
	var v rolloutView
	err := a.getJSON(ctx, a.scaler+"/v1/scalers/"+name+"/rollout", &v)
	return v, err
}

// deleteScaler deletes a scaler; the process driver stops its processes.
func (a *api) deleteScaler(ctx context.Context, name string) error {
	return a.call(ctx, http.MethodDelete, a.scaler+"/v1/scalers/"+name, nil)
}
