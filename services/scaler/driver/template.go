package driver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"unicode/utf8"
)

// Template is what a workload's instances run: the part of a driver spec
// whose change is a new version to roll out, not a new way of driving
// the same one. The process driver runs Command in Dir with Env and
// STEWARD_VERSION=Version; the webhook driver sends Body and Version with
// every call; the kubernetes driver sets Image and Env on Container of the
// pod template.
type Template struct {
	Version string            `json:"version,omitempty"`
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Dir     string            `json:"dir,omitempty"`
	Body    json.RawMessage   `json:"template,omitempty"`
	Image   string            `json:"image,omitempty"`
	// Container names the pod template's container Image is set on (the
	// first if empty).
	Container string `json:"container,omitempty"`
}

// Workload returns the spec's template: the fields of its type that say
// what the instances run.
func (s Spec) Workload() Template {
	t := Template{Version: s.Version}
	switch s.Type {
	case TypeProcess:
		t.Command, t.Env, t.Dir = s.Command, s.Env, s.Dir
	case TypeWebhook:
		t.Body = s.Template
	case TypeKubernetes:
		t.Image, t.Container, t.Env = s.Image, s.Container, s.Env
	}
	return t
}

// WithoutTemplate returns the spec with its template fields cleared: what
// the driver is built from. A template change leaves it as it was, so
// the driver (and the processes it owns) outlives a rollout.
func (s Spec) WithoutTemplate() Spec {
	s.Version, s.Command, s.Env, s.Dir, s.Template, s.Image, s.Container = "", nil, nil, "", nil, "", ""
	return s
}

// Hash names the template: equal templates hash equal on every replica
// (encoding/json writes map keys sorted; Validate stores Body compacted
// with its keys sorted). It is the first 16 hex digits of the SHA-256 of
// the template's JSON, as a pod-template-hash names a ReplicaSet.
func (t Template) Hash() string {
	b, _ := json.Marshal(t)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// MaxTemplateBytes bounds a webhook's template; MaxVersionBytes a
// version, as the registry bounds an instance's.
const (
	MaxTemplateBytes = 64 << 10
	MaxVersionBytes  = 128
)

// validVersion is the registry's rule for an instance's version, so that
// every version the scaler runs can be registered.
func validVersion(v string) bool {
	if v == "" || len(v) > MaxVersionBytes || !utf8.ValidString(v) {
		return false
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// canonicalObject returns raw, a JSON object, with its keys sorted and
// no insignificant space (numbers kept as written), so that two ways of
// writing one template hash equal; ok is false if raw is not an object.
func canonicalObject(raw json.RawMessage) (json.RawMessage, bool) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil || v == nil || d.More() {
		return nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	return b, true
}
