package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

func (a *app) electionCommand() *cobra.Command {
	return group("election", "Leader election: campaign, observe, resign",
		a.electionCampaign(), a.electionObserve(), a.electionResign(), a.electionLs(), a.electionGet())
}

// leadershipRow is a leadership as NAME LEADER TERM TOKEN EXPIRES QUEUE.
func leadershipRow(l api.Leadership) []string {
	return []string{l.Name, l.Leader, itoa(l.Term), itoa(l.Token), timestamp(l.ExpiresAt), strconv.Itoa(l.Queue)}
}

func leadershipTable(leaderships ...api.Leadership) table {
	t := table{header: []string{"NAME", "LEADER", "TERM", "TOKEN", "EXPIRES", "QUEUE"}}
	for _, l := range leaderships {
		t.add(leadershipRow(l)...)
	}
	return t
}

func (a *app) electionCampaign() *cobra.Command {
	var (
		candidate string
		ttl       time.Duration
		value     string
		noWait    bool
	)
	c := &cobra.Command{
		Use:   "campaign NAME --candidate ID",
		Short: "Campaign to lead; hold the leadership (renewed) until Ctrl-C, then resign",
		Long: `Campaign to lead election NAME as candidate ID, waiting in line while someone
else leads (--no-wait: exit with status 1 at once instead). Once it leads it
prints the leadership (NAME CANDIDATE TERM TOKEN FENCE) and holds it, renewing
the lease every third of --ttl, until Ctrl-C; then it resigns, so that the next
in line leads at once, and exits 0. It exits 1 if the leadership is lost.
Write as the leader with 'kv put --fence FENCE'.`,
		Example: `  stewardctl election campaign scaler --candidate a --value '{"addr":"10.0.0.7"}'`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if candidate == "" {
				return usagef("campaign needs --candidate ID")
			}
			opts := sdk.CampaignOptions{TTL: ttl, NoWait: noWait}
			if value != "" {
				if !json.Valid([]byte(value)) {
					return usagef("--value %q is not JSON", value)
				}
				opts.Value = json.RawMessage(value)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			l, err := c.Elections().Campaign(ctx, args[0], candidate, opts)
			if err != nil {
				return interrupted(cmd, err)
			}
			held := map[string]any{"name": l.Name(), "candidate": candidate, "term": l.Term(), "token": l.Token(), "fence": l.Fence()}
			if err := a.event(held, func() string {
				return strings.Join([]string{"elected", l.Name(), candidate, itoa(l.Term()), itoa(l.Token()), l.Fence()}, "\t")
			}); err != nil {
				_ = l.Resign(context.WithoutCancel(ctx))
				return err
			}
			select {
			case <-ctx.Done():
				// The leadership ends with the campaign's context: it
				// resigns before Done closes.
				<-l.Done()
			case <-l.Done():
				return l.Err()
			}
			return a.event(map[string]any{"name": l.Name(), "candidate": candidate, "resigned": l.Token()}, func() string {
				return strings.Join([]string{"resigned", l.Name(), candidate, itoa(l.Term()), itoa(l.Token())}, "\t")
			})
		},
	}
	c.Flags().StringVar(&candidate, "candidate", "", "this campaigner's ID, unique among the election's candidates")
	c.Flags().DurationVar(&ttl, "ttl", 10*time.Second, "the lease: it lapses this long after the last renewal")
	c.Flags().StringVar(&value, "value", "", "a JSON value the leader advertises")
	c.Flags().BoolVar(&noWait, "no-wait", false, "fail at once when someone else leads")
	return c
}

func (a *app) electionObserve() *cobra.Command {
	return &cobra.Command{
		Use:   "observe NAME",
		Short: "Print an election's leadership, then every change, until Ctrl-C",
		Long: `Print election NAME's leadership as it is (current, or vacant), then every
change (elected, resigned, expired), one line each: EVENT NAME LEADER TERM
TOKEN EXPIRES QUEUE (-o json: one JSON object a line), until Ctrl-C.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			for ev, err := range c.Elections().Observe(cmd.Context(), args[0]) {
				if err != nil {
					return interrupted(cmd, err)
				}
				out := struct {
					Type string `json:"type"`
					*api.Leadership
				}{ev.Type, ev.Leadership}
				line := func() string {
					if ev.Leadership == nil {
						return ev.Type + "\t" + args[0]
					}
					return ev.Type + "\t" + strings.Join(leadershipRow(*ev.Leadership), "\t")
				}
				if err := a.event(out, line); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func (a *app) electionResign() *cobra.Command {
	var (
		candidate string
		token     int64
	)
	c := runs(a, &cobra.Command{
		Use:   "resign NAME --candidate ID --token N",
		Short: "Resign a leadership that another process holds (campaign resigns its own on Ctrl-C)",
		Long: `Resign election NAME's leadership held by candidate ID with fencing token N
(a leader that crashed, whose lease would otherwise run out its TTL). The first
candidate in line leads from the same revision. A candidate and token that no
longer lead exit with status 1.`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) (map[string]any, error) {
		if candidate == "" || token <= 0 {
			return nil, usagef("resign needs --candidate ID and --token N")
		}
		return map[string]any{"name": args[0], "candidate": candidate, "resigned": token},
			c.Elections().Resign(ctx, args[0], candidate, token)
	}, func(m map[string]any) table {
		return table{header: []string{"NAME", "CANDIDATE", "RESIGNED"}, rows: [][]string{{m["name"].(string), candidate, itoa(token)}}}
	})
	c.Flags().StringVar(&candidate, "candidate", "", "the leading candidate's ID")
	c.Flags().Int64Var(&token, "token", 0, "the leadership's fencing token")
	return c
}

func (a *app) electionLs() *cobra.Command {
	return runs(a, &cobra.Command{Use: "ls", Short: "List the elections someone leads", Args: usageArgs(cobra.NoArgs)},
		func(ctx context.Context, c *sdk.Client, _ []string) ([]api.Leadership, error) {
			return list(c.Elections().List(ctx))
		}, func(leaderships []api.Leadership) table { return leadershipTable(leaderships...) })
}

func (a *app) electionGet() *cobra.Command {
	return runs(a, &cobra.Command{Use: "get NAME", Short: "Read an election's leadership (status 3 when no one leads)", Args: usageArgs(cobra.ExactArgs(1))},
		func(ctx context.Context, c *sdk.Client, args []string) (*api.Leadership, error) {
			return c.Elections().Get(ctx, args[0])
		}, func(l *api.Leadership) table { return leadershipTable(*l) })
}
