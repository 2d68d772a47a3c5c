// Package merge joins OpenAPI 3.0 documents into one: the gateway's own
// part and the services' /v1 operations, for the gateway's GET
// /openapi.json. It is deterministic (the same inputs give the same bytes)
// and refuses what it cannot join without changing a meaning: a path that
// two documents describe differently, or top-level security that differs.
//
// The rules, in order:
//   - a service contributes its /v1 paths only (the gateway proxies /v1;
//     /healthz, /readyz, /metrics and /openapi.json at the gateway are the
//     gateway's own), and only the components those paths reach;
//   - a component name defined differently by two documents is renamed in
//     every document that defines it to the document's prefix and the name
//     (Problem becomes ConfigProblem, RegistryProblem, ...), repeated until
//     no name conflicts, since a rename changes the components that refer
//     to it; a name defined identically everywhere stays as it is;
//   - every /v1 operation also has the answers the gateway gives in the
//     service's place (the own part's x-steward-proxied responses: no
//     passing instance, a failed upstream, ...); where the service has an
//     answer with the same status, the operation's answer is either: its
//     body one of the two problems, its headers those both have;
//   - a path defined identically by several documents appears once;
//   - an operationId used by several operations is renamed in each to the
//     document's lower-case prefix and the id (grantLease becomes
//     configGrantLease and registryGrantLease);
//   - a tag described differently by several documents becomes
//     "<prefix> <tag>" in each.
package merge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Part is one document to merge.
type Part struct {
	// Prefix names the document in renamed components ("Config") and,
	// lower-cased, in renamed operation ids and tags.
	Prefix string
	Doc    []byte
	// Own marks the gateway's part: all its paths and components are kept,
	// and its info, servers, security and openapi version are the result's.
	Own bool
}

type object = map[string]any

var kinds = []string{"schemas", "responses", "parameters", "examples", "requestBodies", "headers", "securitySchemes", "links", "callbacks"}

type doc struct {
	Part
	v object
}

// Merge joins parts; exactly one must be Own.
func Merge(parts []Part) ([]byte, error) {
	var docs []*doc
	var own *doc
	for _, p := range parts {
		dec := json.NewDecoder(bytes.NewReader(p.Doc))
		dec.UseNumber()
		var v object
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("merge: %s: %w", p.Prefix, err)
		}
		d := &doc{Part: p, v: v}
		if p.Own {
			if own != nil {
				return nil, fmt.Errorf("merge: two own parts, %s and %s", own.Prefix, p.Prefix)
			}
			own = d
		} else {
			paths := obj(v, "paths")
			for path := range paths {
				if !strings.HasPrefix(path, "/v1/") {
					delete(paths, path)
				}
			}
			prune(v)
		}
		docs = append(docs, d)
	}
	if own == nil {
		return nil, fmt.Errorf("merge: no own part")
	}
	for _, d := range docs {
		if !equal(d.v["security"], own.v["security"]) {
			return nil, fmt.Errorf("merge: %s's top-level security differs from %s's", d.Prefix, own.Prefix)
		}
	}
	if err := renameComponents(docs); err != nil {
		return nil, err
	}
	if x, ok := own.v["x-steward-proxied"].(object); ok {
		for _, d := range docs {
			if d != own {
				proxied(d, own, obj(x, "responses"))
			}
		}
	}
	renameOperationIDs(docs)
	renameTags(docs)

	out := object{}
	for _, k := range []string{"openapi", "info", "servers", "security"} {
		if v, ok := own.v[k]; ok {
			out[k] = v
		}
	}
	paths, components, seenTag := object{}, object{}, map[string]bool{}
	var tags []any
	owner := map[string]string{}
	for _, d := range docs {
		for path, item := range obj(d.v, "paths") {
			if prev, ok := paths[path]; ok {
				if !equal(prev, item) {
					return nil, fmt.Errorf("merge: path %s differs between %s and %s", path, owner[path], d.Prefix)
				}
				continue
			}
			paths[path], owner[path] = item, d.Prefix
		}
		for _, kind := range kinds {
			for name, c := range obj(obj(d.v, "components"), kind) {
				obj(components, kind)[name] = c // equal where shared: renameComponents saw to it
			}
		}
		for _, t := range list(d.v, "tags") {
			if name, _ := t.(object)["name"].(string); !seenTag[name] {
				seenTag[name] = true
				tags = append(tags, t)
			}
		}
	}
	for _, kind := range kinds {
		if c := obj(components, kind); len(c) == 0 {
			delete(components, kind)
		}
	}
	// The services' components that only the answers either replaced
	// referred to go; the own part's stay (the route document, the
	// fallback answers), but for those only its proxied answers name,
	// which stay where an operation refers to them.
	keep := reach(components, paths, own.v["security"])
	proxiedOnly := reach(obj(own.v, "components"), own.v["x-steward-proxied"])
	for _, kind := range kinds {
		c := obj(components, kind)
		for name := range c {
			ref := "#/components/" + kind + "/" + name
			if _, mine := obj(obj(own.v, "components"), kind)[name]; keep[ref] || kind == "securitySchemes" || (mine && !proxiedOnly[ref]) {
				continue
			}
			delete(c, name)
		}
	}
	out["tags"], out["paths"], out["components"] = tags, paths, components

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// reach returns the component refs that roots reach, directly or through
// other components.
func reach(components object, roots ...any) map[string]bool {
	keep := map[string]bool{}
	var walk func(x any)
	walk = func(x any) {
		switch x := x.(type) {
		case object:
			for k, e := range x {
				if ref, ok := e.(string); k == "$ref" && ok && !keep[ref] {
					keep[ref] = true
					if kind, name, ok := splitRef(ref); ok {
						walk(obj(components, kind)[name])
					}
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return keep
}

// prune drops the components no path and no security requirement reaches,
// and the tags no operation names.
func prune(v object) {
	keep := reach(obj(v, "components"), v["paths"])
	var schemes []any
	schemes = append(schemes, list(v, "security")...)
	for _, item := range obj(v, "paths") {
		for _, op := range item.(object) {
			if op, ok := op.(object); ok {
				schemes = append(schemes, list(op, "security")...)
			}
		}
	}
	used := map[string]bool{}
	for _, item := range obj(v, "paths") {
		for _, op := range item.(object) {
			if op, ok := op.(object); ok {
				for _, t := range list(op, "tags") {
					used[t.(string)] = true
				}
			}
		}
	}
	var tags []any
	for _, t := range list(v, "tags") {
		if name, _ := t.(object)["name"].(string); used[name] {
			tags = append(tags, t)
		}
	}
	v["tags"] = tags
	for _, req := range schemes {
		for name := range req.(object) {
			keep["#/components/securitySchemes/"+name] = true
		}
	}
	components := obj(v, "components")
	for _, kind := range kinds {
		c := obj(components, kind)
		for name := range c {
			if !keep["#/components/"+kind+"/"+name] {
				delete(c, name)
			}
		}
	}
}

// renameComponents renames, until none is left, every component name that
// two documents define differently.
func renameComponents(docs []*doc) error {
	for {
		renamed := false
		for _, kind := range kinds {
			defs := map[string][]*doc{}
			for _, d := range docs {
				for name := range obj(obj(d.v, "components"), kind) {
					defs[name] = append(defs[name], d)
				}
			}
			for _, name := range sortedKeys(defs) {
				ds := defs[name]
				same := true
				for _, d := range ds[1:] {
					same = same && equal(component(ds[0], kind, name), component(d, kind, name))
				}
				if same {
					continue
				}
				for _, d := range ds {
					to := d.Prefix + name
					if _, taken := obj(obj(d.v, "components"), kind)[to]; taken {
						return fmt.Errorf("merge: %s: renaming %s %s to %s, which it already defines", d.Prefix, kind, name, to)
					}
					c := obj(obj(d.v, "components"), kind)
					c[to] = c[name]
					delete(c, name)
					replaceRef(d.v, "#/components/"+kind+"/"+name, "#/components/"+kind+"/"+to)
				}
				renamed = true
			}
		}
		if !renamed {
			return nil
		}
	}
}

// renameOperationIDs prefixes every operationId that several operations
// (not one path's operation shared by several documents) use.
func renameOperationIDs(docs []*doc) {
	type use struct {
		d     *doc
		op    object
		where string // "METHOD path"
	}
	uses := map[string][]use{}
	for _, d := range docs {
		for _, path := range sortedKeys(obj(d.v, "paths")) {
			for method, op := range obj(d.v, "paths")[path].(object) {
				if op, ok := op.(object); ok {
					if id, ok := op["operationId"].(string); ok {
						uses[id] = append(uses[id], use{d, op, method + " " + path})
					}
				}
			}
		}
	}
	for id, us := range uses {
		// A shared path (the same operation in several documents) is
		// one operation: Merge checks that they are the same.
		shared := true
		for _, u := range us[1:] {
			shared = shared && u.where == us[0].where
		}
		if shared {
			continue
		}
		for _, u := range us {
			u.op["operationId"] = strings.ToLower(u.d.Prefix) + strings.ToUpper(id[:1]) + id[1:]
		}
	}
}

// renameTags renames in each document a tag that documents describe
// differently.
func renameTags(docs []*doc) {
	defs := map[string][]*doc{}
	tag := func(d *doc, name string) any {
		for _, t := range list(d.v, "tags") {
			if t.(object)["name"] == name {
				return t
			}
		}
		return nil
	}
	for _, d := range docs {
		for _, t := range list(d.v, "tags") {
			name, _ := t.(object)["name"].(string)
			defs[name] = append(defs[name], d)
		}
	}
	for name, ds := range defs {
		same := true
		for _, d := range ds[1:] {
			same = same && equal(tag(ds[0], name), tag(d, name))
		}
		if same {
			continue
		}
		for _, d := range ds {
			to := strings.ToLower(d.Prefix) + " " + name
			tag(d, name).(object)["name"] = to
			for _, item := range obj(d.v, "paths") {
				for _, op := range item.(object) {
					if op, ok := op.(object); ok {
						for i, t := range list(op, "tags") {
							if t == name {
								op["tags"].([]any)[i] = to
							}
						}
					}
				}
			}
		}
	}
}

func component(d *doc, kind, name string) any { return obj(obj(d.v, "components"), kind)[name] }

// obj returns v[k] as an object, creating it when absent.
func obj(v object, k string) object {
	o, ok := v[k].(object)
	if !ok {
		o = object{}
		v[k] = o
	}
	return o
}

func list(v object, k string) []any {
	l, _ := v[k].([]any)
	return l
}

func splitRef(ref string) (kind, name string, ok bool) {
	rest, ok := strings.CutPrefix(ref, "#/components/")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "/")
}

func replaceRef(x any, from, to string) {
	switch x := x.(type) {
	case object:
		for k, e := range x {
			if k == "$ref" && e == from {
				x[k] = to
				continue
			}
			replaceRef(e, from, to)
		}
	case []any:
		for _, e := range x {
			replaceRef(e, from, to)
		}
	}
}

// equal compares two decoded JSON values; encoding/json writes object keys
// sorted, so equal values encode to the same bytes.
func equal(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// proxied adds the gateway's answers (status to response, refs into own's
// components) to every operation of d; a status d's operation has already
// becomes either answer.
func proxied(d, own *doc, gateway object) {
	for _, path := range sortedKeys(obj(d.v, "paths")) {
		for _, op := range obj(d.v, "paths")[path].(object) {
			op, ok := op.(object)
			if !ok {
				continue
			}
			responses := obj(op, "responses")
			for _, status := range sortedKeys(gateway) {
				if svc, ok := responses[status]; ok {
					responses[status] = shared(d, svc, either(resolve(d, svc), resolve(own, gateway[status])))
				} else {
					responses[status] = gateway[status]
				}
			}
		}
	}
}

// shared is answer, the either of d's response svc and the gateway's,
// as a response component of d when svc is one (named after it, with
// OrGateway), so that every operation answering it refers to one
// component and a code generator makes one type of it, not one per
// operation; inline otherwise.
func shared(d *doc, svc any, answer object) any {
	ref, _ := svc.(object)["$ref"].(string)
	kind, name, ok := splitRef(ref)
	if !ok || kind != "responses" {
		return answer
	}
	name += "OrGateway"
	inline := answer
	answer, problem := object{}, object{}
	for k, v := range inline {
		answer[k] = v
	}
	content := object{}
	for mt, m := range obj(inline, "content") {
		m := m.(object)
		if _, ok := obj(m, "schema")["anyOf"]; ok {
			// A schema of its own too: generators inline a response's
			// inline schema into every operation that answers it.
			problem = m["schema"].(object)
			m = object{"schema": object{"$ref": "#/components/schemas/" + name + "Problem"}}
		}
		content[mt] = m
	}
	answer["content"] = content
	responses := obj(obj(d.v, "components"), "responses")
	schemas := obj(obj(d.v, "components"), "schemas")
	if prev, ok := responses[name]; ok && (!equal(prev, answer) || (len(problem) > 0 && !equal(schemas[name+"Problem"], problem))) {
		return inline // svc answers two statuses: one component each would need other names
	}
	responses[name] = answer
	if len(problem) > 0 {
		schemas[name+"Problem"] = problem
	}
	return object{"$ref": "#/components/responses/" + name}
}

// resolve follows a component ref of d.
func resolve(d *doc, r any) object {
	o, _ := r.(object)
	if ref, ok := o["$ref"].(string); ok {
		if kind, name, ok := splitRef(ref); ok {
			if c, ok := component(d, kind, name).(object); ok {
				return c
			}
		}
	}
	return o
}

// either is a response that is svc's or gw's: the headers both send, a
// body of either schema.
func either(svc, gw object) object {
	out := object{"description": "Either the service's answer: " + str(svc["description"]) + " Or the gateway's, in its place: " + str(gw["description"])}
	headers := object{}
	for name, h := range obj(svc, "headers") {
		if _, ok := obj(gw, "headers")[name]; ok {
			headers[name] = h
		}
	}
	if len(headers) > 0 {
		out["headers"] = headers
	}
	content := object{}
	for mt, m := range obj(svc, "content") {
		g, ok := obj(gw, "content")[mt].(object)
		if !ok {
			content[mt] = m
			continue
		}
		content[mt] = object{"schema": object{"anyOf": []any{m.(object)["schema"], g["schema"]}}}
	}
	for mt, m := range obj(gw, "content") {
		if _, ok := content[mt]; !ok {
			content[mt] = m
		}
	}
	out["content"] = content
	return out
}

func str(v any) string { s, _ := v.(string); return s }
