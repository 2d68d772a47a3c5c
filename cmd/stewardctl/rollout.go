package main

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

func (a *app) rolloutCommand() *cobra.Command {
	return group("rollout", "A scaler's rollouts of a new template: status, history, pause, resume, abort, promote",
		a.rolloutStatus(), a.rolloutHistory(),
		a.rolloutControl("pause", "Pause the rollout in progress: nothing is started or stopped for it, autoscaling goes on",
			sdk.Scalers.PauseRollout),
		a.rolloutControl("resume", "Resume a paused rollout; its progress deadline starts again",
			sdk.Scalers.ResumeRollout),
		a.rolloutControl("abort", "Abort the rollout in progress: roll back to the previous template (the spec keeps the new one)",
			sdk.Scalers.AbortRollout),
		a.rolloutControl("promote", "Promote the rollout in progress: new instances count as available once passing (a paused one resumes)",
			sdk.Scalers.PromoteRollout))
}

// versionName is a template as a person names it: its driver.version, or
// the start of its hash when the spec has none.
func versionName(version *string, hash string) string {
	if version != nil && *version != "" {
		return *version
	}
	if len(hash) > 8 {
		hash = hash[:8]
	}
	return orNone(hash)
}

// fromTo is a rollout's templates as "from→to".
func fromTo(r api.Rollout) string {
	return versionName(r.From.Version, r.From.Hash) + "→" + versionName(r.To.Version, r.To.Hash)
}

// rolloutTable is scaler name's rollout r as a row per version: its
// instances running, ready and available, beside the rollout's phase,
// strategy and templates; its message, if any, under them. A canary's
// also has its step and each version's share of the traffic (its weight
// in the gateway's split).
func rolloutTable(name string, r *api.Rollout) table {
	canary := r.Canary
	t := table{header: []string{"SCALER", "PHASE", "STRATEGY", "FROM→TO", "VERSION", "RUNNING", "READY", "AVAILABLE"}}
	if canary != nil {
		t.header = []string{"SCALER", "PHASE", "STRATEGY", "FROM→TO", "STEP", "VERSION", "WEIGHT", "RUNNING", "READY", "AVAILABLE"}
	}
	// The weights are relative (the gateway's split): shown as percents.
	sum := 0
	if canary != nil {
		for _, w := range canary.Weights {
			sum += w
		}
	}
	row := func(version *string, hash string, counts ...string) {
		cells := []string{name, string(r.Phase), string(r.Strategy), fromTo(*r)}
		if canary != nil {
			weight := "<none>" // no split written for it: the gateway balances as outside a canary
			if w, ok := canary.Weights[versionName(version, hash)]; ok && sum > 0 {
				weight = strconv.Itoa((w*100+sum/2)/sum) + "%"
			}
			cells = append(cells, strconv.Itoa(canary.Step), versionName(version, hash), weight)
		} else {
			cells = append(cells, versionName(version, hash))
		}
		t.add(append(cells, counts...)...)
	}
	for _, v := range r.Versions {
		row(v.Version, v.Hash, strconv.Itoa(v.Running), strconv.Itoa(v.Ready), strconv.Itoa(v.Available))
	}
	if len(r.Versions) == 0 { // a driver that reports no instances (a webhook's)
		row(nil, "", "<none>", "<none>", "<none>")
	}
	if r.Message != nil && *r.Message != "" {
		t.footer = "message: " + *r.Message
	}
	return t
}

func (a *app) rolloutStatus() *cobra.Command {
	return a.rollout(&cobra.Command{
		Use:   "status SCALER",
		Short: "A scaler's rollout: in progress, or the last one finished, with each version's instances",
		Long: `Show scaler SCALER's newest rollout of its driver's template (the one in
progress, or the last one finished): its phase (Progressing, Paused,
Succeeded, Failed, RolledBack), strategy, the versions it goes from and to,
and each version's instances running, ready and available; a canary's step
and each version's share of the traffic too. -o json|yaml adds
the bounds in force, the pending intents and the controls made. Status 3 when
the scaler does not exist or its template never changed.`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}, sdk.Scalers.Rollout)
}

// rolloutControl is the command op, a POST to the scaler's rollout (status
// 1 when it does not apply: no rollout in progress, or it is so already).
func (a *app) rolloutControl(op, short string, fn func(sdk.Scalers, context.Context, string) (*api.Rollout, error)) *cobra.Command {
	return a.rollout(&cobra.Command{Use: op + " SCALER", Short: short, Args: usageArgs(cobra.ExactArgs(1))}, fn)
}

// rollout makes cmd call fn for the scaler its argument names and show
// the rollout fn answers with.
func (a *app) rollout(cmd *cobra.Command, fn func(sdk.Scalers, context.Context, string) (*api.Rollout, error)) *cobra.Command {
	var name string
	return runs(a, cmd, func(ctx context.Context, c *sdk.Client, args []string) (*api.Rollout, error) {
		name = args[0]
		return fn(c.Scalers(), ctx, name)
	}, func(r *api.Rollout) table { return rolloutTable(name, r) })
}

func (a *app) rolloutHistory() *cobra.Command {
	return runs(a, &cobra.Command{
		Use:   "history SCALER",
		Short: "A scaler's rollouts, newest first: who started each, when, from and to what, how it ended",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) ([]api.Rollout, error) {
		return list(c.Scalers().Rollouts(ctx, args[0]))
	}, func(rs []api.Rollout) table {
		t := table{header: []string{"ID", "FROM→TO", "PHASE", "BY", "STARTED", "FINISHED", "MESSAGE"}}
		for _, r := range rs {
			by, msg, finished := "", "", ""
			if r.By != nil {
				by = *r.By
			}
			if r.Message != nil {
				msg = *r.Message
			}
			if r.FinishedAt != nil {
				finished = timestamp(*r.FinishedAt)
			}
			t.add(itoa(r.Id), fromTo(r), string(r.Phase), orNone(by), timestamp(r.StartedAt), orNone(finished), orNone(msg))
		}
		return t
	})
}
