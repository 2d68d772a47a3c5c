package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

func (a *app) scalerCommand() *cobra.Command {
	return group("scaler", "Autoscalers: specs, status, decisions, simulations",
		a.scalerLs(), a.scalerGet(), a.scalerApply(), a.scalerDelete(), a.scalerDecisions(), a.scalerSimulate())
}

// scalerTable is scalers as rows of their bounds, replicas and driver.
func scalerTable(scalers ...api.Scaler) table {
	t := table{header: []string{"NAME", "SERVICE", "MIN", "MAX", "CURRENT", "DESIRED", "DRIVER", "GENERATION"}}
	for _, s := range scalers {
		t.add(s.Name, s.Spec.Service, strconv.Itoa(s.Spec.MinReplicas), strconv.Itoa(s.Spec.MaxReplicas),
			strconv.Itoa(s.Status.CurrentReplicas), strconv.Itoa(s.Status.DesiredReplicas),
			string(s.Spec.Driver.Type), itoa(s.Generation))
	}
	return t
}

func (a *app) scalerLs() *cobra.Command {
	return runs(a, &cobra.Command{Use: "ls", Short: "List the scalers", Args: usageArgs(cobra.NoArgs)},
		func(ctx context.Context, c *sdk.Client, _ []string) ([]api.Scaler, error) {
			return list(c.Scalers().List(ctx))
		}, func(scalers []api.Scaler) table { return scalerTable(scalers...) })
}

func (a *app) scalerGet() *cobra.Command {
	return runs(a, &cobra.Command{
		Use:   "get NAME",
		Short: "Read a scaler: its spec with defaults, and its status (-o yaml to edit and apply)",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) (*api.Scaler, error) {
		return c.Scalers().Get(ctx, args[0])
	}, func(s *api.Scaler) table {
		t := scalerTable(*s)
		if d := s.Status.LastDecision; d != nil {
			t.footer = "last decision: " + d.Reason
		}
		return t
	})
}

func oneScaler(s *api.Scaler) table { return scalerTable(*s) }

// namedFile reads file for apply -f: it returns the name (flag, else the
// file's) and the document without it.
func (a *app) namedFile(file, flag, specField string) (string, json.RawMessage, error) {
	if file == "" {
		return "", nil, usagef("apply needs -f FILE")
	}
	doc, err := a.readDocument(file)
	if err != nil {
		return "", nil, err
	}
	inFile, spec, err := namedDocument(doc, specField)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", file, err)
	}
	name, err := nameFor(flag, inFile)
	return name, spec, err
}

// namedDocument is what apply -f reads: a spec (a route document, a
// scaler's spec) with, optionally, its name beside it, or what get -o
// json|yaml printed ({"name", "spec", "status", ...}: the spec is taken).
// It returns the name ("" if the file has none) and the document without
// it.
func namedDocument(doc json.RawMessage, specField string) (string, json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil {
		return "", nil, fmt.Errorf("the document is not a JSON object: %w", err)
	}
	var name string
	if raw, ok := fields["name"]; ok {
		if err := json.Unmarshal(raw, &name); err != nil {
			return "", nil, fmt.Errorf("name: %w", err)
		}
		delete(fields, "name")
	}
	if spec, ok := fields[specField]; ok && specField != "" {
		return name, spec, nil
	}
	b, err := json.Marshal(fields)
	return name, b, err
}

// nameFor is the name apply uses: the flag's, else the file's.
func nameFor(flag, inFile string) (string, error) {
	switch {
	case flag != "" && inFile != "" && flag != inFile:
		return "", usagef("--name %q and the file's name %q differ", flag, inFile)
	case flag != "":
		return flag, nil
	case inFile != "":
		return inFile, nil
	}
	return "", usagef("no name: give --name, or a \"name\" field in the file")
}

func (a *app) scalerApply() *cobra.Command {
	var (
		file, name string
		ifRevision int64
		cmd        *cobra.Command
	)
	cmd = runs(a, &cobra.Command{
		Use:   "apply -f FILE [--name NAME]",
		Short: "Create or replace a scaler from a spec in JSON or YAML",
		Long: `Create or replace a scaler from FILE (JSON or YAML; - for stdin): the spec as
PUT /v1/scalers/{name} takes it, with the scaler's name in --name or in a
"name" field beside the spec's fields; or what 'scaler get -o yaml' printed
(its spec is applied; a webhook driver's secret, never shown, must be added
back). --if-revision N replaces it only while its revision is N (0: only if
it does not exist), status 4 otherwise.`,
		Example: `  stewardctl scaler apply -f web.yaml
  stewardctl scaler get web -o yaml > web.yaml && $EDITOR web.yaml && stewardctl scaler apply -f web.yaml`,
		Args: usageArgs(cobra.NoArgs),
	}, func(ctx context.Context, c *sdk.Client, _ []string) (*api.Scaler, error) {
		name, spec, err := a.namedFile(file, name, "spec")
		if err != nil {
			return nil, err
		}
		var opts []sdk.WriteOption
		if cmd.Flags().Changed("if-revision") {
			opts = append(opts, sdk.IfRevision(ifRevision))
		}
		return c.Scalers().Put(ctx, name, spec, opts...)
	}, oneScaler)
	cmd.Flags().StringVarP(&file, "file", "f", "", "the spec, JSON or YAML (- for stdin)")
	cmd.Flags().StringVar(&name, "name", "", "the scaler's name (else the file's \"name\")")
	cmd.Flags().Int64Var(&ifRevision, "if-revision", 0, "replace only while the scaler's revision is this (0: only create)")
	return cmd
}

func (a *app) scalerDelete() *cobra.Command {
	return runs(a, &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm", "del"},
		Short:   "Delete a scaler (its driver's processes stop)",
		Args:    usageArgs(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) (*api.Scaler, error) {
		return c.Scalers().Delete(ctx, args[0])
	}, oneScaler)
}

func (a *app) scalerDecisions() *cobra.Command {
	var limit int
	c := runs(a, &cobra.Command{
		Use:   "decisions NAME",
		Short: "A scaler's recent decisions, newest first, and why each was made",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) (*api.DecisionsResponse, error) {
		return c.Scalers().Decisions(ctx, args[0], limit)
	}, func(d *api.DecisionsResponse) table {
		t := table{header: []string{"AT", "CURRENT", "DESIRED", "READY", "REASON"}}
		for _, x := range d.Items {
			t.add(timestamp(x.At), strconv.Itoa(x.CurrentReplicas), strconv.Itoa(x.DesiredReplicas),
				strconv.Itoa(x.ReadyReplicas), x.Reason)
		}
		if !d.Complete {
			t.footer = "older decisions were dropped (no archive to read them from)"
		}
		return t
	})
	c.Flags().IntVar(&limit, "limit", 0, "at most this many (0: the server's default)")
	return c
}

func (a *app) scalerSimulate() *cobra.Command {
	var file string
	c := runs(a, &cobra.Command{
		Use:   "simulate NAME [-f REQUEST]",
		Short: "Replay a load series through a scaler's spec, acting on nothing",
		Long: `Replay a load series through scaler NAME's spec and print the decisions it
would make. REQUEST (JSON or YAML; - for stdin) is the body of POST
/v1/scalers/{name}/simulate: {"series": {"replicas": 1, "points": [{"at":
"...", "metrics": {"gateway_rps": 40}}, ...]}, "spec": {...}}; without -f the
recorded metrics are replayed through the scaler's own spec.`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) (*api.Simulation, error) {
		req := json.RawMessage(`{}`)
		if file != "" {
			doc, err := a.readDocument(file)
			if err != nil {
				return nil, err
			}
			req = doc
		}
		return c.Scalers().Simulate(ctx, args[0], req)
	}, func(sim *api.Simulation) table {
		t := table{header: []string{"AT", "CURRENT", "DESIRED", "REASON"}}
		for _, d := range sim.Decisions {
			t.add(timestamp(d.At), strconv.Itoa(d.CurrentReplicas), strconv.Itoa(d.DesiredReplicas), d.Reason)
		}
		s := sim.Summary
		t.footer = fmt.Sprintf("%d decisions, %d changes, replicas %d to %d, finally %d",
			s.Decisions, s.Changes, s.MinReplicas, s.MaxReplicas, s.FinalReplicas)
		return t
	})
	c.Flags().StringVarP(&file, "file", "f", "", "the simulation request, JSON or YAML (- for stdin)")
	return c
}
