package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/sdk"
)

func (a *app) leaseCommand() *cobra.Command {
	return group("lease", "Config leases: keys attached to one are deleted when it ends",
		a.leaseGrant(), a.leaseKeepAlive(), a.leaseRevoke(), a.leaseGet(), a.leaseLs())
}

// leaseTable is leases as ID TTL EXPIRES KEYS rows.
func leaseTable(leases ...sdk.Lease) table {
	t := table{header: []string{"ID", "TTL", "EXPIRES", "KEYS"}}
	for _, l := range leases {
		t.add(itoa(l.ID), l.TTL.String(), timestamp(l.ExpiresAt), orNone(strings.Join(l.Keys, ",")))
	}
	return t
}

func oneLease(l *sdk.Lease) table { return leaseTable(*l) }

// leaseID is the lease ID argument.
func leaseID(arg string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("lease ID %q: want a positive integer", arg)
	}
	return id, nil
}

func (a *app) leaseGrant() *cobra.Command {
	return runs(a, &cobra.Command{
		Use:     "grant TTL",
		Short:   "Grant a lease of TTL (e.g. 10s, 1m)",
		Example: "  LEASE=$(stewardctl lease grant 30s -o json | jq .id)\n  stewardctl kv put /app/session '\"a\"' --lease $LEASE",
		Args:    usageArgs(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) (*sdk.Lease, error) {
		ttl, err := time.ParseDuration(args[0])
		if err != nil {
			return nil, usagef("TTL %q: %v", args[0], err)
		}
		return c.Leases().Grant(ctx, ttl)
	}, oneLease)
}

func (a *app) leaseKeepAlive() *cobra.Command {
	var once bool
	c := &cobra.Command{
		Use:   "keepalive ID",
		Short: "Keep a lease alive, renewing it every third of its TTL until Ctrl-C",
		Long: `Keep a lease alive: renew it at once, then every third of its TTL, printing
each renewal, until Ctrl-C (the lease then runs out its TTL). --once renews it
once and exits. A lease that ended exits with status 3.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := leaseID(args[0])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			for {
				l, err := c.Leases().KeepAlive(ctx, id)
				if err != nil {
					return interrupted(cmd, err)
				}
				line := func() string { return strings.Join(leaseTable(*l).rows[0], "\t") }
				if err := a.event(l, line); err != nil || once {
					return err
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Duration(l.TTL) / 3):
				}
			}
		},
	}
	c.Flags().BoolVar(&once, "once", false, "renew once and exit")
	return c
}

func (a *app) leaseRevoke() *cobra.Command {
	return runs(a, &cobra.Command{Use: "revoke ID", Short: "Revoke a lease and delete its keys", Args: usageArgs(cobra.ExactArgs(1))},
		func(ctx context.Context, c *sdk.Client, args []string) (map[string]int64, error) {
			id, err := leaseID(args[0])
			if err != nil {
				return nil, err
			}
			return map[string]int64{"revoked": id}, c.Leases().Revoke(ctx, id)
		}, func(m map[string]int64) table {
			return table{header: []string{"REVOKED"}, rows: [][]string{{itoa(m["revoked"])}}}
		})
}

func (a *app) leaseGet() *cobra.Command {
	return runs(a, &cobra.Command{Use: "get ID", Short: "Read a lease: its TTL, when it expires, and its keys", Args: usageArgs(cobra.ExactArgs(1))},
		func(ctx context.Context, c *sdk.Client, args []string) (*sdk.Lease, error) {
			id, err := leaseID(args[0])
			if err != nil {
				return nil, err
			}
			return c.Leases().Get(ctx, id)
		}, oneLease)
}

func (a *app) leaseLs() *cobra.Command {
	return runs(a, &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List the leases that keys are attached to (the API has no list of leases)",
		Long: `List leases. Steward's API has no list of leases: this reads every key under
PREFIX (every key without one), then each lease a key is attached to. A lease
no key is attached to is not shown; read it with 'lease get ID'.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) ([]sdk.Lease, error) {
		return leasesOfKeys(ctx, c, prefixArg(args))
	}, func(leases []sdk.Lease) table { return leaseTable(leases...) })
}

// leasesOfKeys is the leases keys under prefix are attached to, by ID.
func leasesOfKeys(ctx context.Context, c *sdk.Client, prefix string) ([]sdk.Lease, error) {
	var ids []int64
	for e, err := range c.KV().All(ctx, prefix, sdk.ListOptions{KeysOnly: true}) {
		if err != nil {
			return nil, err
		}
		if e.Lease > 0 && !slices.Contains(ids, e.Lease) {
			ids = append(ids, e.Lease)
		}
	}
	slices.Sort(ids)
	leases := []sdk.Lease{}
	for _, id := range ids {
		l, err := c.Leases().Get(ctx, id)
		if sdk.IsNotFound(err) {
			continue // it ended since the listing
		}
		if err != nil {
			return nil, err
		}
		leases = append(leases, *l)
	}
	return leases, nil
}

// prefixArg is the optional PREFIX argument, every key ("/") without one.
func prefixArg(args []string) string {
	if len(args) == 1 {
		return absolute(args[0])
	}
	return "/"
}
