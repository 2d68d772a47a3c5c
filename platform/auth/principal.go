package auth

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/stewardhq/steward/platform/fault"
)

// Principal is who a request acts as: the token it authenticated with
// (without its hash) and the rules its roles grant at the time. It is
// also GET /v1/auth/whoami's answer.
type Principal struct {
	Token
	// Rules are the effective rules: the union of the roles' rules
	// without those another one covers, in resource and prefix order.
	Rules []Rule `json:"rules"`
}

// rootRules grant everything: write on every resource, whatever its name.
func rootRules() []Rule {
	var rules []Rule
	for _, r := range Resources() {
		rules = append(rules, Rule{Resource: r, Access: Write})
	}
	return rules
}

// covers reports whether a grants everything b does.
func (a Rule) covers(b Rule) bool {
	return a.Resource == b.Resource && strings.HasPrefix(b.Prefix, a.Prefix) && a.Access.Grants(b.Access)
}

// effective returns the union of rules without the ones another covers,
// sorted by resource, prefix, write before read. In that order a rule
// that covers another comes first (its prefix is a prefix of the other's,
// so sorts before it), so one pass over the sorted rules suffices.
func effective(rules []Rule) []Rule {
	rank := func(r Resource) int { return slices.Index(Resources(), r) }
	sorted := slices.Clone(rules)
	slices.SortFunc(sorted, func(a, b Rule) int {
		return cmp.Or(cmp.Compare(rank(a.Resource), rank(b.Resource)), strings.Compare(a.Prefix, b.Prefix),
			strings.Compare(string(b.Access), string(a.Access))) // "write" > "read"
	})
	out := []Rule{}
	for _, r := range sorted {
		if !slices.ContainsFunc(out, func(k Rule) bool { return k.covers(r) }) {
			out = append(out, r)
		}
	}
	return out
}

// Allowed reports whether the principal may act with access need on the
// thing of resource named name ("" for the unnamed resources: leases,
// metrics, auth): some rule of that resource, whose prefix starts name,
// grants it. A rule with prefix "/app/" allows "/app/x" but not "/app"
// or "/apple".
func (p Principal) Allowed(resource Resource, name string, need Access) bool {
	return slices.ContainsFunc(p.Rules, func(r Rule) bool {
		return r.covers(Rule{Resource: resource, Prefix: name, Access: need})
	})
}

// Require is Allowed as an error: nil, or a Forbidden fault naming the
// resource, the name and the access the request needed.
func (p Principal) Require(resource Resource, name string, need Access) error {
	if p.Allowed(resource, name, need) {
		return nil
	}
	what := string(resource)
	if name != "" {
		what = fmt.Sprintf("%s %q", resource, name)
	}
	return p.forbidden(resource, name, need, fmt.Sprintf("token %s may not %s %s: it needs %s access on %s", p.ID, need, what, need, what))
}

// AllowedPrefix reports whether the principal may act with access need on
// everything of resource under prefix, as a list or watch over the prefix
// does: some rule's prefix must be a prefix of it, so that whatever
// appears under it later is covered too. It is the same test as Allowed,
// and says which question it answers.
func (p Principal) AllowedPrefix(resource Resource, prefix string, need Access) bool {
	return p.Allowed(resource, prefix, need)
}

// RequirePrefix is AllowedPrefix as an error: nil, or a Forbidden fault
// naming the resource, the prefix and the access needed.
func (p Principal) RequirePrefix(resource Resource, prefix string, need Access) error {
	if p.AllowedPrefix(resource, prefix, need) {
		return nil
	}
	return p.forbidden(resource, prefix, need, fmt.Sprintf("token %s may not %s everything of %s under %q: it needs %s access on %s covering that prefix", p.ID, need, resource, prefix, need, resource))
}

// Reaches reports whether some name under prefix may be allowed: a rule
// covers the prefix, or lies under it. A list over a prefix the principal
// does not cover but reaches can still answer, dropping with Filter what
// it may not see; one it does not reach is forbidden outright.
func (p Principal) Reaches(resource Resource, prefix string, need Access) bool {
	return slices.ContainsFunc(p.Rules, func(r Rule) bool {
		return r.Resource == resource && r.Access.Grants(need) &&
			(strings.HasPrefix(prefix, r.Prefix) || strings.HasPrefix(r.Prefix, prefix))
	})
}

// Filter returns Allowed for one resource and access as a test of names,
// for lists and watches that drop what the principal may not see. It
// keeps only the rules that matter, so it is cheap per name.
func (p Principal) Filter(resource Resource, need Access) func(name string) bool {
	var prefixes []string
	for _, r := range p.Rules {
		if r.Resource == resource && r.Access.Grants(need) {
			prefixes = append(prefixes, r.Prefix)
		}
	}
	return func(name string) bool {
		return slices.ContainsFunc(prefixes, func(pre string) bool { return strings.HasPrefix(name, pre) })
	}
}

func (p Principal) forbidden(resource Resource, name string, need Access, detail string) error {
	return fault.New(fault.Forbidden, "%s", detail).With("resource", string(resource)).With("name", name).With("access", string(need))
}
