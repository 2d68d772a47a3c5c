// Package auth is Steward's access control, without the HTTP: roles made
// of rules (a resource, a name prefix, an access), bearer tokens that
// carry roles, and the replicated state machine that holds both. The web
// layer parses the Authorization header (ParseBearer), authenticates the
// secret against the machine inside qlog.Log.Read (Machine.Authenticate)
// and asks the Principal it gets whether the request may go on (Require,
// RequirePrefix, Filter).
//
// Like every state machine in Steward, Machine is pure and deterministic:
// a token's id and the hash of its secret are made by the proposer
// (NewTokenID, NewSecret, HashSecret) and travel in the command, and every
// time it records is the log's time, so replicas agree byte for byte. The
// secret itself never enters the log, a snapshot or a result.
package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/stewardhq/steward/platform/fault"
)

// Access is what a rule lets a token do. Write implies read.
type Access string

// The accesses.
const (
	Read  Access = "read"
	Write Access = "write"
)

// Grants reports whether holding a lets a request that needs need go on.
func (a Access) Grants(need Access) bool {
	switch a {
	case Write:
		return need == Read || need == Write
	case Read:
		return need == Read
	}
	return false
}

func (a Access) valid() bool { return a == Read || a == Write }

// Resource is a kind of thing a rule governs; a rule's prefix matches the
// names of things of that kind.
type Resource string

// The resources. KV names are keys (keys, watches, history and txn alike),
// Services are service names in the registry, Elections and Scalers their
// names, Routes gateway route documents. Leases, Metrics and Auth have no
// names a prefix could select: their rules' prefix is empty.
const (
	KV        Resource = "kv"
	Leases    Resource = "leases"
	Services  Resource = "services"
	Elections Resource = "elections"
	Scalers   Resource = "scalers"
	Metrics   Resource = "metrics"
	Routes    Resource = "routes"
	AuthAdmin Resource = "auth"
)

// Resources lists every resource in the order the API documents them.
func Resources() []Resource {
	return []Resource{KV, Leases, Services, Elections, Scalers, Metrics, Routes, AuthAdmin}
}

// named reports whether r's things have names a rule's prefix selects.
func (r Resource) named() bool {
	switch r {
	case KV, Services, Elections, Scalers, Routes:
		return true
	}
	return false
}

func (r Resource) valid() bool {
	return r.named() || r == Leases || r == Metrics || r == AuthAdmin
}

// Rule grants Access to every thing of Resource whose name starts with
// Prefix; the empty prefix grants it on all of them.
type Rule struct {
	Resource Resource `json:"resource"`
	Prefix   string   `json:"prefix"`
	Access   Access   `json:"access"`
}

// Role is a named set of rules.
type Role struct {
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// RootRole is the built-in role that may do anything. It cannot be put
// or deleted, and the bootstrap token holds it.
const RootRole = "root"

// Limits on documents, checked by Validate before a command is proposed
// and again by Apply, so that the replicated state stays bounded.
const (
	MaxNameBytes        = 128
	MaxPrefixBytes      = 1 << 10 // as long as the longest config key
	MaxRules            = 64
	MaxRoles            = 1024 // roles in the state
	MaxTokenRoles       = 16
	MaxDescriptionBytes = 256
	MaxTokens           = 10000
)

// FieldError is one problem with a document, naming the field as a JSON
// path ("rules[0].access").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// fieldErrors collects every problem of a document so that a 400 names
// them all at once.
type fieldErrors []FieldError

func (fe *fieldErrors) add(field, format string, args ...any) {
	*fe = append(*fe, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns nil, or an Invalid fault whose detail names every field and
// whose "errors" field lists them for the problem document.
func (fe fieldErrors) err(what string) error {
	if len(fe) == 0 {
		return nil
	}
	msgs := make([]string, len(fe))
	for i, e := range fe {
		msgs[i] = e.Field + ": " + e.Message
	}
	return fault.New(fault.Invalid, "invalid %s: %s", what, strings.Join(msgs, "; ")).With("errors", []FieldError(fe))
}

// Validate checks a role document (web.Decode calls it). It returns nil
// or an Invalid fault naming every field in the way.
func (r *Role) Validate() error {
	var fe fieldErrors
	if msg := roleNameProblem(r.Name); msg != "" {
		fe.add("name", "%s", msg)
	} else if r.Name == RootRole {
		fe.add("name", "role %s is built in and cannot be changed", RootRole)
	}
	if len(r.Rules) == 0 || len(r.Rules) > MaxRules {
		fe.add("rules", "want 1 to %d rules", MaxRules)
	}
	for i, rule := range r.Rules {
		if i >= MaxRules {
			break
		}
		at := fmt.Sprintf("rules[%d]", i)
		if !rule.Resource.valid() {
			fe.add(at+".resource", "unknown resource %q: want one of %s", truncate(string(rule.Resource)), resourceList())
		} else if !rule.Resource.named() && rule.Prefix != "" {
			fe.add(at+".prefix", "resource %s has no names: want an empty prefix", rule.Resource)
		}
		if !rule.Access.valid() {
			fe.add(at+".access", "unknown access %q: want read or write", truncate(string(rule.Access)))
		}
		if msg := checkText(rule.Prefix, MaxPrefixBytes); msg != "" {
			fe.add(at+".prefix", "%s", msg)
		}
	}
	return fe.err("role")
}

// ParseRole decodes and validates a role document; unknown fields and
// trailing data are refused.
func ParseRole(doc []byte) (Role, error) {
	var r Role
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Role{}, fault.Wrap(fault.Invalid, err, "role document does not decode")
	}
	if dec.More() {
		return Role{}, fault.New(fault.Invalid, "role document: trailing data after the document")
	}
	return r, r.Validate()
}

// ValidateRoleName checks a role name: 1 to MaxNameBytes of letters,
// digits, '.', '_' and '-', one URL path segment as it is, other than "."
// and "..".
func ValidateRoleName(name string) error {
	if msg := roleNameProblem(name); msg != "" {
		return fault.New(fault.Invalid, "role name: %s", msg)
	}
	return nil
}

func roleNameProblem(name string) string {
	if name == "" || len(name) > MaxNameBytes || name == "." || name == ".." {
		return fmt.Sprintf("want 1 to %d of letters, digits, '.', '_' and '-', other than . and ..", MaxNameBytes)
	}
	if !alnumOr(name, "._-") {
		return fmt.Sprintf("%q: only letters, digits, '.', '_' and '-' are allowed", truncate(name))
	}
	return ""
}

// alnumOr reports whether every byte of s is an ASCII letter or digit or
// one of extra: the one shape of role names, token ids and secrets.
func alnumOr(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte(extra, b) >= 0) {
			return false
		}
	}
	return true
}

// checkText returns why s is not up to max bytes of UTF-8 without control
// characters, or "".
func checkText(s string, max int) string {
	switch {
	case len(s) > max:
		return fmt.Sprintf("want at most %d bytes", max)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }):
		return "control characters are not allowed"
	}
	return ""
}

func resourceList() string {
	rs := Resources()
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
