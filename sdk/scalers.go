package sdk

import (
	"context"

	"github.com/stewardhq/steward/sdk/api"
)

// Scalers are the autoscaler's scalers: a spec each (the service, its
// replica bounds, the metrics and their targets, the driver), the status
// the control loop keeps, and the decisions it made.
type Scalers struct{ c *Client }

// Scalers are the autoscaler's scalers.
func (c *Client) Scalers() Scalers { return Scalers{c} }

// List is every scaler, in name order, page after page.
func (s Scalers) List(ctx context.Context) ([]api.Scaler, error) {
	return collect(func(after *string) ([]api.Scaler, *string, error) {
		page, err := decode[api.ScalerListResponse](s.c.api.ListScalers(ctx, &api.ListScalersParams{After: after}))
		if err != nil {
			return nil, nil, err
		}
		return page.Items, page.Next, nil
	})
}

// Get reads scaler name: its spec with defaults filled in, and its status.
func (s Scalers) Get(ctx context.Context, name string) (*api.Scaler, error) {
	return decode[api.Scaler](s.c.api.GetScaler(ctx, name, &api.GetScalerParams{}))
}

// Put creates or replaces scaler name with spec (an api.Spec, or its JSON
// as a json.RawMessage or []byte, sent as it is so that the server judges
// every field). IfRevision makes it a compare-and-swap on the scaler's
// ModRevision (0: only if it does not exist).
func (s Scalers) Put(ctx context.Context, name string, spec any, opts ...WriteOption) (*api.Scaler, error) {
	body, err := marshalValue(spec)
	if err != nil {
		return nil, err
	}
	o := writeWith(opts)
	p := &api.PutScalerParams{}
	if o.ifRevision > 0 {
		m := etag(o.ifRevision)
		p.IfMatch = &m
	}
	if o.ifAbsent {
		n := api.PutScalerParamsIfNoneMatch("*")
		p.IfNoneMatch = &n
	}
	return decode[api.Scaler](s.c.api.PutScalerWithBody(ctx, name, p, "application/json", bytesReader(body)))
}

// Delete deletes scaler name (its driver's processes stop) and returns it
// as it was; ErrNotFound when there is none.
func (s Scalers) Delete(ctx context.Context, name string, opts ...WriteOption) (*api.Scaler, error) {
	o := writeWith(opts)
	p := &api.DeleteScalerParams{}
	if o.ifRevision > 0 {
		m := etag(o.ifRevision)
		p.IfMatch = &m
	}
	return decode[api.Scaler](s.c.api.DeleteScaler(ctx, name, p))
}

// Decisions are scaler name's recent decisions, newest first, up to limit
// (0: the server's default). Complete is false when older ones were
// dropped for lack of an archive.
func (s Scalers) Decisions(ctx context.Context, name string, limit int) (*api.DecisionsResponse, error) {
	p := &api.ListDecisionsParams{}
	if limit > 0 {
		n := int64(limit)
		p.Limit = &n
	}
	return decode[api.DecisionsResponse](s.c.api.ListDecisions(ctx, name, p))
}

// Simulate replays a load series through scaler name's spec (or the
// request's own spec) and acts on nothing. req is an api.SimulateRequest
// or its JSON; an empty request ({}) replays the recorded decisions'
// series.
func (s Scalers) Simulate(ctx context.Context, name string, req any) (*api.Simulation, error) {
	body, err := marshalValue(req)
	if err != nil {
		return nil, err
	}
	return decode[api.Simulation](s.c.api.SimulateWithBody(ctx, name, &api.SimulateParams{}, "application/json", bytesReader(body)))
}

// Rollout is scaler name's newest rollout of its driver's template: the
// one in progress, or the last one finished (its phase, the versions'
// running, ready and available instances, the bounds in force, the
// pending intents, the controls). ErrNotFound when there is no such
// scaler or its template never changed.
func (s Scalers) Rollout(ctx context.Context, name string) (*api.Rollout, error) {
	return decode[api.Rollout](s.c.api.GetRollout(ctx, name, &api.GetRolloutParams{}))
}

// Rollouts is scaler name's rollout history, newest first: the one in
// progress, if any, then the finished ones kept. ErrNotFound when there
// is no such scaler.
func (s Scalers) Rollouts(ctx context.Context, name string) ([]api.Rollout, error) {
	res, err := decode[api.RolloutsResponse](s.c.api.ListRollouts(ctx, name, &api.ListRolloutsParams{}))
	if err != nil {
		return nil, err
	}
	return res.Items, nil
}

// PauseRollout pauses scaler name's rollout in progress (nothing is
// started or stopped for it; autoscaling goes on) and returns it after;
// ErrConflict when none is in progress or it is paused already.
func (s Scalers) PauseRollout(ctx context.Context, name string) (*api.Rollout, error) {
	return decode[api.Rollout](s.c.api.PauseRollout(ctx, name, &api.PauseRolloutParams{}))
}

// ResumeRollout resumes scaler name's paused rollout and returns it
// after; ErrConflict when none is in progress or it is not paused.
func (s Scalers) ResumeRollout(ctx context.Context, name string) (*api.Rollout, error) {
	return decode[api.Rollout](s.c.api.ResumeRollout(ctx, name, &api.ResumeRolloutParams{}))
}

// AbortRollout aborts scaler name's rollout in progress: it rolls back to
// the previous template and ends RolledBack (the spec keeps the new one).
// It returns the rollout after; ErrConflict when none is in progress or
// it is aborted already.
func (s Scalers) AbortRollout(ctx context.Context, name string) (*api.Rollout, error) {
	return decode[api.Rollout](s.c.api.AbortRollout(ctx, name, &api.AbortRolloutParams{}))
}

// PromoteRollout promotes scaler name's rollout in progress (from then on
// new instances count as available once passing, without
// minReadySeconds; a paused rollout resumes) and returns it after;
// ErrConflict when none is in progress or it is aborted.
func (s Scalers) PromoteRollout(ctx context.Context, name string) (*api.Rollout, error) {
	return decode[api.Rollout](s.c.api.PromoteRollout(ctx, name, &api.PromoteRolloutParams{}))
}
