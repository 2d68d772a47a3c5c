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
		"driver": map[string]any{
			"type":    "process",
			"command": []string{app},
			"env": map[string]string{
				"STEWARD_REGISTRY_URL": registryURL,
				"STEWARD_DEMO_SERVICE": service,
				"STEWARD_DEMO_WORK":    work.String(),
				// One core per replica, as a pod with a CPU limit of 1
				// would have: a replica saturates, and more replicas help.
				"GOMAXPROCS": "1",
			},
			"gracePeriod": gracePeriod.String(),
		},
	}
}

// putScaler creates the scaler, retrying while the scaler service is not
// ready yet (it answers 503 until its log has caught up).
func (a *api) putScaler(ctx context.Context, spec map[string]any) error {
	body, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, a.scaler+"/v1/scalers/"+scalerName, bytes.NewReader(body))
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
				return fmt.Errorf("PUT /v1/scalers/%s: %s: %s", scalerName, resp.Status, b)
			}
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PUT /v1/scalers/%s: %w", scalerName, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (a *api) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
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

// passing counts the service's passing instances in the registry.
func (a *api) passing(ctx context.Context) (int, error) {
	var list []json.RawMessage
	err := a.getJSON(ctx, a.registry+"/v1/services/"+service+"/instances?status=passing", &list)
	return len(list), err
}
