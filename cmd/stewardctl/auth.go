package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

func (a *app) authCommand() *cobra.Command {
	token := group("token", "Tokens: create, list, get, revoke",
		a.tokenCreate(), a.tokenLs(), a.tokenGet(), a.tokenRevoke())
	role := group("role", "Roles: rules {resource, prefix, access} a token's roles grant",
		a.rolePut(), a.roleGet(), a.roleLs(), a.roleRm())
	return group("auth", "Tokens, roles, whoami and the audit of auth changes (STEWARD_AUTH=on)",
		token, role, a.whoami(), a.audit())
}

// tokenTable is tokens as ID DESCRIPTION ROLES CREATED EXPIRES rows.
func tokenTable(tokens ...api.AuthToken) table {
	t := table{header: []string{"ID", "DESCRIPTION", "ROLES", "CREATED", "EXPIRES"}}
	for _, k := range tokens {
		expires := "never"
		if k.ExpiresAt != nil {
			expires = timestamp(*k.ExpiresAt)
		}
		t.add(k.Id, orNone(k.Description), orNone(strings.Join(k.Roles, ",")), timestamp(k.CreatedAt), expires)
	}
	return t
}

func oneToken(k *api.AuthToken) table { return tokenTable(*k) }

func (a *app) tokenCreate() *cobra.Command {
	var r sdk.TokenRequest
	c := runs(a, &cobra.Command{
		Use:   "create --role ROLE...",
		Short: "Issue a token; its secret is printed once",
		Example: `  stewardctl auth token create --role app-reader --description ci --ttl 24h
  SECRET=$(stewardctl auth token create --role app-reader -o json | jq -r .secret)`,
		Args: usageArgs(cobra.NoArgs),
	}, func(ctx context.Context, c *sdk.Client, _ []string) (*api.AuthIssued, error) {
		return c.Auth().CreateToken(ctx, r)
	}, func(issued *api.AuthIssued) table {
		t := tokenTable(api.AuthToken{Id: issued.Id, Description: issued.Description, Roles: issued.Roles,
			CreatedAt: issued.CreatedAt, ExpiresAt: issued.ExpiresAt})
		t.footer = "secret (shown once): " + issued.Secret
		return t
	})
	c.Flags().StringSliceVar(&r.Roles, "role", nil, "a role the token holds (repeat, or comma-separate)")
	c.Flags().StringVar(&r.Description, "description", "", "what the token is for")
	c.Flags().DurationVar(&r.TTL, "ttl", 0, "how long the token lasts (0: it never expires)")
	c.Flags().StringVar(&r.Secret, "secret", "", "the token's secret, when you choose it (else a fresh random one)")
	return c
}

func (a *app) tokenLs() *cobra.Command {
	return runs(a, &cobra.Command{Use: "ls", Short: "List the tokens (never their secrets)", Args: usageArgs(cobra.NoArgs)},
		func(ctx context.Context, c *sdk.Client, _ []string) ([]api.AuthToken, error) {
			return list(c.Auth().Tokens(ctx))
		}, func(tokens []api.AuthToken) table { return tokenTable(tokens...) })
}

func (a *app) tokenGet() *cobra.Command {
	return runs(a, &cobra.Command{Use: "get ID", Short: "Read a token", Args: usageArgs(cobra.ExactArgs(1))},
		func(ctx context.Context, c *sdk.Client, args []string) (*api.AuthToken, error) {
			return c.Auth().Token(ctx, args[0])
		}, oneToken)
}

func (a *app) tokenRevoke() *cobra.Command {
	return runs(a, &cobra.Command{Use: "revoke ID", Short: "Revoke a token: every service refuses it from then on", Args: usageArgs(cobra.ExactArgs(1))},
		func(ctx context.Context, c *sdk.Client, args []string) (*api.AuthToken, error) {
			return c.Auth().RevokeToken(ctx, args[0])
		}, oneToken)
}

// roleTable is roles as one row per rule.
func roleTable(roles ...api.AuthRole) table {
	t := table{header: []string{"ROLE", "RESOURCE", "PREFIX", "ACCESS"}}
	for _, r := range roles {
		if len(r.Rules) == 0 {
			t.add(r.Name, "<none>", "", "")
		}
		for _, rule := range r.Rules {
			t.add(r.Name, string(rule.Resource), strconv.Quote(rule.Prefix), string(rule.Access))
		}
	}
	return t
}

func oneRole(r *api.AuthRole) table { return roleTable(*r) }

// parseRule is a --rule RESOURCE:PREFIX:ACCESS.
func parseRule(s string) (api.AuthRule, error) {
	resource, rest, ok1 := strings.Cut(s, ":")
	i := strings.LastIndex(rest, ":")
	if !ok1 || i < 0 {
		return api.AuthRule{}, usagef("--rule %q: want RESOURCE:PREFIX:ACCESS, e.g. kv:/app/:read", s)
	}
	return api.AuthRule{Resource: api.AuthRuleResource(resource), Prefix: rest[:i], Access: api.AuthRuleAccess(rest[i+1:])}, nil
}

func (a *app) rolePut() *cobra.Command {
	var (
		rules []string
		file  string
	)
	c := runs(a, &cobra.Command{
		Use:   "put NAME --rule RESOURCE:PREFIX:ACCESS... | -f FILE",
		Short: "Create or replace a role",
		Long: `Create or replace role NAME with rules, each RESOURCE:PREFIX:ACCESS: resources
kv, leases, services, elections, scalers, metrics, routes, auth; access read or
write (write implies read); an empty prefix covers every name. Or -f FILE, the
role's JSON or YAML ({"rules": [{"resource", "prefix", "access"}]}).`,
		Example: `  stewardctl auth role put app-reader --rule kv:/app/:read
  stewardctl auth role put deployer --rule kv:/app/:write --rule scalers::write`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) (*api.AuthRole, error) {
		role, err := a.roleOf(args[0], rules, file)
		if err != nil {
			return nil, err
		}
		return c.Auth().PutRole(ctx, role)
	}, oneRole)
	c.Flags().StringArrayVar(&rules, "rule", nil, "a rule RESOURCE:PREFIX:ACCESS (repeat)")
	c.Flags().StringVarP(&file, "file", "f", "", "the role, JSON or YAML (- for stdin)")
	return c
}

// roleOf is role name with the rules given as flags or in file.
func (a *app) roleOf(name string, rules []string, file string) (api.AuthRole, error) {
	role := api.AuthRole{Name: name}
	if file == "" {
		for _, s := range rules {
			rule, err := parseRule(s)
			if err != nil {
				return role, err
			}
			role.Rules = append(role.Rules, rule)
		}
		return role, nil
	}
	if len(rules) > 0 {
		return role, usagef("give --rule or -f, not both")
	}
	doc, err := a.readDocument(file)
	if err != nil {
		return role, err
	}
	if err := json.Unmarshal(doc, &role); err != nil {
		return role, fmt.Errorf("%s: %w", file, err)
	}
	if role.Name != name && role.Name != "" {
		return role, usagef("the file names role %q, not %q", role.Name, name)
	}
	role.Name = name
	return role, nil
}

func (a *app) roleGet() *cobra.Command {
	return runs(a, &cobra.Command{Use: "get NAME", Short: "Read a role's rules", Args: usageArgs(cobra.ExactArgs(1))},
		func(ctx context.Context, c *sdk.Client, args []string) (*api.AuthRole, error) {
			return c.Auth().Role(ctx, args[0])
		}, oneRole)
}

func (a *app) roleLs() *cobra.Command {
	return runs(a, &cobra.Command{Use: "ls", Short: "List the roles and their rules", Args: usageArgs(cobra.NoArgs)},
		func(ctx context.Context, c *sdk.Client, _ []string) ([]api.AuthRole, error) {
			return list(c.Auth().Roles(ctx))
		}, func(roles []api.AuthRole) table { return roleTable(roles...) })
}

func (a *app) roleRm() *cobra.Command {
	return runs(a, &cobra.Command{Use: "rm NAME", Aliases: []string{"delete", "del"}, Short: "Delete a role", Args: usageArgs(cobra.ExactArgs(1))},
		func(ctx context.Context, c *sdk.Client, args []string) (*api.AuthRole, error) {
			return c.Auth().DeleteRole(ctx, args[0])
		}, oneRole)
}

func (a *app) whoami() *cobra.Command {
	return runs(a, &cobra.Command{Use: "whoami", Short: "The token stewardctl calls with, and the rules its roles grant", Args: usageArgs(cobra.NoArgs)},
		func(ctx context.Context, c *sdk.Client, _ []string) (*api.AuthPrincipal, error) {
			return c.Auth().Whoami(ctx)
		}, func(p *api.AuthPrincipal) table {
			t := roleTable(api.AuthRole{Name: p.Id, Rules: p.Rules})
			t.header[0] = "TOKEN"
			t.footer = "roles: " + strings.Join(p.Roles, ",")
			return t
		})
}

func (a *app) audit() *cobra.Command {
	var limit int
	c := runs(a, &cobra.Command{Use: "audit", Short: "The latest auth changes: who, what, when", Args: usageArgs(cobra.NoArgs)},
		func(ctx context.Context, c *sdk.Client, _ []string) ([]api.AuthAuditEntry, error) {
			return list(c.Auth().Audit(ctx, limit))
		}, func(entries []api.AuthAuditEntry) table {
			t := table{header: []string{"REVISION", "TIME", "BY", "OP", "TARGET"}}
			for _, e := range entries {
				t.add(itoa(e.Revision), e.Time.UTC().Format(time.RFC3339), e.By, string(e.Op), e.Target)
			}
			return t
		})
	c.Flags().IntVar(&limit, "limit", 0, "at most this many (0: the server's default)")
	return c
}
