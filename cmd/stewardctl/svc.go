package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

func (a *app) svcCommand() *cobra.Command {
	return group("svc", "The service registry: services, instances, health",
		a.svcLs(), a.svcGet(), a.svcRegister(), a.svcDeregister(), a.svcHeartbeat(), a.svcWatch())
}

// instanceTable is instances as rows of what a person looks for first.
func instanceTable(instances ...api.Instance) table {
	t := table{header: []string{"SERVICE", "ID", "ADDRESS", "STATUS", "TAGS", "VERSION", "ZONE"}}
	for _, in := range instances {
		t.add(in.Service, in.Id, fmt.Sprintf("%s:%d", in.Address, in.Port), string(in.Status),
			orNone(strings.Join(in.Tags, ",")), orNone(deref(in.Version)), orNone(deref(in.Zone)))
	}
	return t
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (a *app) svcLs() *cobra.Command {
	return runs(a, &cobra.Command{Use: "ls", Short: "List the services that have instances", Args: usageArgs(cobra.NoArgs)},
		func(ctx context.Context, c *sdk.Client, _ []string) ([]api.ServiceSummary, error) {
			return list(c.Services().List(ctx))
		}, func(services []api.ServiceSummary) table {
			t := table{header: []string{"NAME", "INSTANCES", "PASSING", "WARNING", "CRITICAL", "PROTECTED", "TAGS"}}
			for _, s := range services {
				t.add(s.Name, strconv.Itoa(s.Instances), strconv.Itoa(s.Passing), strconv.Itoa(s.Warning), strconv.Itoa(s.Critical),
					strconv.FormatBool(s.Protected),
					orNone(strings.Join(s.Tags, ",")))
			}
			return t
		})
}

func (a *app) svcGet() *cobra.Command {
	var q sdk.Query
	c := &cobra.Command{
		Use:   "get SERVICE [ID]",
		Short: "A service's instances, or one instance",
		Example: `  stewardctl svc get web --status passing
  stewardctl svc get web web-1 -o json`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if len(args) == 2 {
				in, err := c.Services().Get(cmd.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				return a.show(in, func() table { return instanceTable(*in) })
			}
			instances, _, err := c.Services().Instances(cmd.Context(), args[0], q)
			if err != nil {
				return err
			}
			return a.show(instances, func() table { return instanceTable(instances...) })
		},
	}
	queryFlags(c, &q)
	return c
}

// queryFlags are the flags that select a service's instances.
func queryFlags(c *cobra.Command, q *sdk.Query) {
	c.Flags().StringVar((*string)(&q.Status), "status", "", "only instances with this status: passing, warning or critical")
	c.Flags().StringVar(&q.Tag, "tag", "", "only instances with this tag")
	c.Flags().StringVar(&q.Zone, "zone", "", "only instances in this zone")
}

func (a *app) svcRegister() *cobra.Command {
	var (
		file             string
		address          string
		port             int
		tags             []string
		meta             map[string]string
		version, zone    string
		weight           int
		ttl, interval    time.Duration
		httpURL, tcpAddr string
		deregisterAfter  time.Duration
		lease            int64
	)
	c := &cobra.Command{
		Use:   "register SERVICE ID",
		Short: "Register an instance, or update its registration",
		Long: `Register an instance of SERVICE under ID, described by flags or by -f FILE
(the registration's JSON or YAML, as PUT /v1/services/{service}/instances/{id}
takes it). One health check at most: --ttl (heartbeats, see 'svc heartbeat'),
--http or --tcp (the registry probes it every --interval).`,
		Example: `  stewardctl svc register web web-1 --address 127.0.0.1 --port 9000 --tag v1 --ttl 10s
  stewardctl svc register api api-1 --address 127.0.0.1 --port 8081 --http http://127.0.0.1:8081/healthz --interval 5s
  stewardctl svc register web web-2 -f web-2.yaml`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var doc json.RawMessage
			if file != "" {
				if countChanged(cmd, "address", "port", "tag", "meta", "version", "zone", "weight",
					"ttl", "http", "tcp", "interval", "deregister-after") > 0 {
					return usagef("describe the instance with flags or with -f, not both")
				}
				d, err := a.readDocument(file)
				if err != nil {
					return err
				}
				doc = d
			} else {
				if address == "" || port == 0 {
					return usagef("an instance needs --address and --port (or -f FILE)")
				}
				reg := map[string]any{"address": address, "port": port}
				if len(tags) > 0 {
					reg["tags"] = tags
				}
				if len(meta) > 0 {
					reg["metadata"] = meta
				}
				if version != "" {
					reg["version"] = version
				}
				if zone != "" {
					reg["zone"] = zone
				}
				if cmd.Flags().Changed("weight") {
					reg["weight"] = weight
				}
				check, err := checkOf(ttl, httpURL, tcpAddr, interval, deregisterAfter)
				if err != nil {
					return err
				}
				if check != nil {
					reg["check"] = check
				}
				doc, _ = json.Marshal(reg)
			}
			var reg api.Registration
			if err := json.Unmarshal(doc, &reg); err != nil {
				return fmt.Errorf("the registration: %w", err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var opts []sdk.WriteOption
			if lease > 0 {
				opts = append(opts, sdk.WithLease(lease))
			}
			in, err := c.Services().Register(cmd.Context(), args[0], args[1], reg, opts...)
			if err != nil {
				return err
			}
			return a.show(in, func() table { return instanceTable(*in) })
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "the registration, JSON or YAML (- for stdin)")
	f.StringVar(&address, "address", "", "the instance's IP address or host name")
	f.IntVar(&port, "port", 0, "the instance's port")
	f.StringSliceVar(&tags, "tag", nil, "a tag (repeat, or comma-separate)")
	f.StringToStringVar(&meta, "meta", nil, "metadata KEY=VALUE (repeat)")
	f.StringVar(&version, "version", "", "the instance's version (for the gateway's splits)")
	f.StringVar(&zone, "zone", "", "the instance's zone")
	f.IntVar(&weight, "weight", 0, "the instance's balancing weight")
	f.DurationVar(&ttl, "ttl", 0, "a TTL check: critical unless a heartbeat comes within this")
	f.StringVar(&httpURL, "http", "", "an HTTP check: this URL answers 2xx")
	f.StringVar(&tcpAddr, "tcp", "", "a TCP check: this host:port accepts a connection")
	f.DurationVar(&interval, "interval", 0, "how often an --http or --tcp check runs")
	f.DurationVar(&deregisterAfter, "deregister-after", 0, "deregister the instance once critical this long")
	f.Int64Var(&lease, "lease", 0, "a registry lease: the instance goes when it ends")
	return c
}

// countChanged is how many of the flags names were set.
func countChanged(cmd *cobra.Command, names ...string) int {
	n := 0
	for _, name := range names {
		if cmd.Flags().Changed(name) {
			n++
		}
	}
	return n
}

// checkOf is the health check the flags describe, nil for none.
func checkOf(ttl time.Duration, httpURL, tcpAddr string, interval, deregisterAfter time.Duration) (map[string]any, error) {
	check := map[string]any{}
	kinds := 0
	if ttl > 0 {
		check["ttl"] = ttl.String()
		kinds++
	}
	if httpURL != "" {
		check["http"] = httpURL
		kinds++
	}
	if tcpAddr != "" {
		check["tcp"] = tcpAddr
		kinds++
	}
	switch {
	case kinds > 1:
		return nil, usagef("one check at most: --ttl, --http or --tcp")
	case kinds == 0 && (interval > 0 || deregisterAfter > 0):
		return nil, usagef("--interval and --deregister-after qualify a check: give --ttl, --http or --tcp")
	case kinds == 0:
		return nil, nil
	}
	if interval > 0 {
		check["interval"] = interval.String()
	}
	if deregisterAfter > 0 {
		check["deregisterAfter"] = deregisterAfter.String()
	}
	return check, nil
}

func (a *app) svcDeregister() *cobra.Command {
	return runs(a, &cobra.Command{Use: "deregister SERVICE ID", Short: "Deregister an instance", Args: usageArgs(cobra.ExactArgs(2))},
		func(ctx context.Context, c *sdk.Client, args []string) (map[string]string, error) {
			return map[string]string{"service": args[0], "deregistered": args[1]}, c.Services().Deregister(ctx, args[0], args[1])
		}, func(m map[string]string) table {
			return table{header: []string{"SERVICE", "DEREGISTERED"}, rows: [][]string{{m["service"], m["deregistered"]}}}
		})
}

func (a *app) svcHeartbeat() *cobra.Command {
	return &cobra.Command{
		Use:   "heartbeat SERVICE ID",
		Short: "Renew an instance's TTL check as passing",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return c.Services().Heartbeat(cmd.Context(), args[0], args[1])
		},
	}
}

func (a *app) svcWatch() *cobra.Command {
	var q sdk.Query
	c := &cobra.Command{
		Use:   "watch SERVICE",
		Short: "Print a service's instances, then again on every change, until Ctrl-C",
		Long: `Print a service's instances as they are, then the whole set again on every
change (one line each: SERVICE REVISION ID=STATUS,...; -o json: one JSON
object a line), until Ctrl-C.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			for set, err := range c.Services().Watch(cmd.Context(), args[0], q) {
				if err != nil {
					return interrupted(cmd, err)
				}
				line := func() string {
					ids := make([]string, 0, len(set.Instances))
					for _, in := range set.Instances {
						ids = append(ids, in.Id+"="+string(in.Status))
					}
					slices.Sort(ids)
					return strings.Join([]string{set.Service, itoa(set.Revision), orNone(strings.Join(ids, ","))}, "\t")
				}
				if err := a.event(set, line); err != nil {
					return err
				}
			}
			return nil
		},
	}
	queryFlags(c, &q)
	return c
}
