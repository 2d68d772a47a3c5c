package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

func (a *app) routesCommand() *cobra.Command {
	return group("routes", "The gateway's routes: documents in config under "+sdk.RoutesPrefix,
		a.routesLs(), a.routesGet(), a.routesApply(), a.routesRm())
}

func (a *app) routesLs() *cobra.Command {
	return runs(a, &cobra.Command{
		Use:   "ls",
		Short: "The gateway's routing table: the routes in force and the documents it rejected",
		Long: `The routing table of the gateway at --endpoint: every route in force, and
every document it rejected with the reason (the route's previous version, if
any, stays in force). Only a gateway answers this.`,
		Args: usageArgs(cobra.NoArgs),
	}, func(ctx context.Context, c *sdk.Client, _ []string) (*api.RouteStatus, error) {
		return c.Routes().Status(ctx)
	}, func(st *api.RouteStatus) table {
		t := table{header: []string{"NAME", "PATH", "HOST", "SERVICE", "STATE"}}
		for _, r := range st.Routes {
			t.add(r.Name, r.Match.PathPrefix, orNone(deref(r.Match.Host)), r.Service, "in force")
		}
		for _, r := range st.Rejected {
			t.add(r.Name, "", "", "", fmt.Sprintf("rejected at revision %d: %s", r.Revision, r.Reason))
		}
		return t
	})
}

func (a *app) routesGet() *cobra.Command {
	return runs(a, &cobra.Command{Use: "get NAME", Short: "A route's document as stored in config", Args: usageArgs(cobra.ExactArgs(1))},
		func(ctx context.Context, c *sdk.Client, args []string) (*sdk.KeyValue, error) {
			return c.Routes().Get(ctx, args[0])
		}, func(e *sdk.KeyValue) table {
			name := strings.TrimPrefix(e.Key, sdk.RoutesPrefix)
			return table{header: []string{"NAME", "DOCUMENT", "REVISION"}, rows: [][]string{{name, compact(e.Value), itoa(e.ModRevision)}}}
		})
}

func (a *app) routesApply() *cobra.Command {
	var (
		file, name string
		wait       time.Duration
	)
	c := runs(a, &cobra.Command{
		Use:   "apply -f FILE [--name NAME]",
		Short: "Store a route document; the gateways apply it within moments",
		Long: `Store the route document in FILE (JSON or YAML; - for stdin) as route NAME
(--name, or a "name" field in the file, which is not stored). Then, for up to
--wait, it reads the gateway's routing table until the gateway has read the
new document, and exits 1 with the reason if the gateway rejected it (the
config service stores any JSON; the gateway validates). --wait 0 does not
check; nor does an --endpoint that is not a gateway.`,
		Example: `  stewardctl routes apply -f api.yaml
  stewardctl routes apply --name api -f - <<'EOF'
  {"match": {"pathPrefix": "/api/"}, "service": "api", "stripPrefix": true, "timeout": "10s"}
  EOF`,
		Args: usageArgs(cobra.NoArgs),
	}, func(ctx context.Context, c *sdk.Client, _ []string) (*sdk.KeyValue, error) {
		name, route, err := a.namedFile(file, name, "")
		if err != nil {
			return nil, err
		}
		e, err := c.Routes().Put(ctx, name, route)
		if err != nil || wait <= 0 {
			return e, err
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		return e, appliedBy(wctx, c, name, e.ModRevision)
	}, func(e *sdk.KeyValue) table {
		name := strings.TrimPrefix(e.Key, sdk.RoutesPrefix)
		return table{header: []string{"NAME", "KEY", "REVISION"}, rows: [][]string{{name, e.Key, itoa(e.ModRevision)}}}
	})
	c.Flags().StringVarP(&file, "file", "f", "", "the route document, JSON or YAML (- for stdin)")
	c.Flags().StringVar(&name, "name", "", "the route's name (else the file's \"name\")")
	c.Flags().DurationVar(&wait, "wait", 10*time.Second, "how long to wait for the gateway to accept or reject it (0: do not)")
	return c
}

// appliedBy waits until the gateway c calls has read route name at
// revision rev, and returns its rejection, if it rejected it. An
// endpoint that is not a gateway (404) cannot say: nil.
func appliedBy(ctx context.Context, c *sdk.Client, name string, rev int64) error {
	for {
		st, err := c.Routes().Status(ctx)
		switch {
		case sdk.IsNotFound(err):
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("route %s stored at revision %d, but the gateway had not read it in time", name, rev)
		case err != nil:
			return err
		case st.Revision >= rev:
			return rejection(st, name, rev)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("route %s stored at revision %d, but the gateway had not read it in time", name, rev)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rejection is the gateway's refusal of route name's document at rev,
// nil if it did not refuse it.
func rejection(st *api.RouteStatus, name string, rev int64) error {
	for _, r := range st.Rejected {
		if r.Name == name && r.Revision == rev {
			return fmt.Errorf("the gateway rejected route %s (revision %d): %s", name, rev, r.Reason)
		}
	}
	return nil
}

func (a *app) routesRm() *cobra.Command {
	return runs(a, &cobra.Command{Use: "rm NAME", Aliases: []string{"delete", "del"}, Short: "Delete a route", Args: usageArgs(cobra.ExactArgs(1))},
		func(ctx context.Context, c *sdk.Client, args []string) (map[string]string, error) {
			return map[string]string{"deleted": args[0]}, c.Routes().Delete(ctx, args[0])
		}, func(m map[string]string) table {
			return table{header: []string{"DELETED"}, rows: [][]string{{m["deleted"]}}}
		})
}
