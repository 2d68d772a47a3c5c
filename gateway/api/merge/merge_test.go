package merge

import (
	"encoding/json"
	"strings"
	"testing"
)

const own = `{"openapi":"3.0.3","info":{"title":"t","version":"1"},"security":[{"b":[]}],
 "paths":{"/healthz":{"get":{"operationId":"healthz","tags":["ops"],"responses":{"200":{"$ref":"#/components/responses/Ok"}}}}},
 "tags":[{"name":"ops"}],
 "components":{"securitySchemes":{"b":{"type":"http","scheme":"bearer"}},
  "schemas":{"Problem":{"type":"object"},"Route":{"type":"object"}},
  "responses":{"Ok":{"description":"ok"},"Down":{"description":"gateway 503","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Problem"}}}}}},
 "x-steward-proxied":{"responses":{"503":{"$ref":"#/components/responses/Down"}}}}`

// svc is a service document: /v1/<name> answering schema X, which each
// service defines as x, and Problem as problem.
func svc(name, x, problem string) string {
	return `{"openapi":"3.0.3","info":{"title":"` + name + `","version":"1"},"security":[{"b":[]}],
 "paths":{"/healthz":{"get":{"operationId":"healthz","responses":{"200":{"description":"ok"}}}},
  "/v1/` + name + `":{"get":{"operationId":"get","tags":["t"],"responses":{
   "200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Wrap"}}}},
   "503":{"description":"svc 503","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Problem"}}}}}}},
  "/v1/shared":{"get":{"operationId":"shared","responses":{"200":{"description":"ok"}}}}},
 "tags":[{"name":"t","description":"` + name + `"},{"name":"ops"}],
 "components":{"securitySchemes":{"b":{"type":"http","scheme":"bearer"}},"schemas":{
  "X":` + x + `,"Wrap":{"type":"object","properties":{"x":{"$ref":"#/components/schemas/X"}}},
  "Problem":` + problem + `,"Unused":{"type":"string"}}}}`
}

func TestMerge(t *testing.T) {
	parts := []Part{{Prefix: "Gateway", Doc: []byte(own), Own: true},
		{Prefix: "A", Doc: []byte(svc("a", `{"type":"string"}`, `{"type":"object"}`))},
		{Prefix: "B", Doc: []byte(svc("b", `{"type":"integer"}`, `{"type":"object"}`))}}
	out, err := Merge(parts)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Merge(parts)
	if string(again) != string(out) {
		t.Fatal("Merge is not deterministic")
	}
	var d struct {
		Paths      map[string]map[string]struct{ OperationID string }
		Tags       []struct{ Name string }
		Components map[string]map[string]any
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for kind, c := range d.Components {
		for name := range c {
			keys = append(keys, kind+"/"+name)
		}
	}
	for _, c := range []struct{ name, got, want string }{
		{"paths", strings.Join(sorted(d.Paths), " "), "/healthz /v1/a /v1/b /v1/shared"},
		{"operation ids", d.Paths["/v1/a"]["get"].OperationID + " " + d.Paths["/v1/b"]["get"].OperationID + " " + d.Paths["/v1/shared"]["get"].OperationID, "aGet bGet shared"},
		// X differs, so Wrap (which refers to it) differs too; Problem is
		// the same everywhere; Unused goes; Route and Down are the own
		// part's (Down, the proxied 503, stays for /v1/shared, which had
		// none of its own).
		{"components", strings.Join(sortedList(keys), " "), "responses/Down responses/Ok schemas/AWrap schemas/AX schemas/BWrap schemas/BX schemas/Problem schemas/Route securitySchemes/b"},
		{"tags", tagNames(d.Tags), "ops a t b t"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if s := string(out); !strings.Contains(s, `"description": "Either the service's answer: svc 503 Or the gateway's, in its place: gateway 503"`) || strings.Contains(s, "x-steward") {
		t.Errorf("the 503 is not either answer, or the extension is left:\n%s", s)
	}

	// A path two services describe differently is refused.
	bad := strings.Replace(svc("b", `{"type":"integer"}`, `{"type":"object"}`), `"operationId":"shared"`, `"operationId":"other"`, 1)
	if _, err := Merge([]Part{parts[0], parts[1], {Prefix: "B", Doc: []byte(bad)}}); err == nil || !strings.Contains(err.Error(), "/v1/shared") {
		t.Errorf("Merge with /v1/shared differing = %v, want an error naming it", err)
	}
}

func sorted[V any](m map[string]V) []string { return sortedKeys(m) }

func sortedList(l []string) []string {
	m := map[string]bool{}
	for _, s := range l {
		m[s] = true
	}
	return sortedKeys(m)
}

func tagNames(tags []struct{ Name string }) string {
	var names []string
	for _, t := range tags {
		names = append(names, t.Name)
	}
	return strings.Join(names, " ")
}
