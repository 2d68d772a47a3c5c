// Package driver changes a service's replica count: it is the scaler's
// hand on the world. A Driver starts and stops local processes
// (process), tells someone else's system over HTTP (webhook), or patches
// a Kubernetes workload's scale subresource (kubernetes).
//
// Every Scale call carries the scaler leader's fencing token, and a
// driver refuses a token older than the newest it has seen, so a leader
// that was deposed while a call was in flight, or that has not yet
// noticed it lost its lease, cannot act after its successor has
// (Kleppmann, "How to do distributed locking"). The webhook driver also
// sends the token, so the receiver can fence on its side, which is the
// only place a fence holds across scaler replicas.
package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/hpa"
)

// Driver changes a service's replica count.
//
// The drivers New returns are also io.Closers; Close releases what they
// hold (the process driver stops its processes).
type Driver interface {
	// Current returns the replica count as the driver sees it.
	Current(ctx context.Context) (int, error)
	// Scale sets the replica count. token is the caller's fencing token;
	// a token older than the newest seen is refused with ErrFenced and
	// nothing is done.
	Scale(ctx context.Context, replicas int, token int64) (Result, error)
}

// Result is what a Scale call did.
type Result struct {
	// Previous is the count before the call, or Unknown.
	Previous int `json:"previous"`
	// Replicas is the count after the call, as the driver saw it.
	Replicas int    `json:"replicas"`
	Detail   string `json:"detail,omitempty"`
}

// Unknown is Result.Previous when the driver cannot know the count: a
// webhook without a GET, before its first acknowledged call.
const Unknown = -1

// ErrFenced is returned by Scale for a token older than the newest the
// driver has seen: the caller was deposed.
var ErrFenced = errors.New("driver: fencing token is older than the newest seen: the caller is no longer the leader")

// ErrUnknown is returned by Current when the driver cannot know the
// count (a webhook without readCurrent that has not been acknowledged
// yet); the caller falls back on another source, such as the registry.
var ErrUnknown = errors.New("driver: replica count unknown")

// Types of driver.
const (
	TypeProcess    = "process"
	TypeWebhook    = "webhook"
	TypeKubernetes = "kubernetes"
)

// Spec chooses and configures a driver. It is one flat JSON object, as
// people write it in a scaler spec; each type reads its own fields.
type Spec struct {
	Type string `json:"type"`
	// Version names the template the instances run (Template): the
	// process driver sets STEWARD_VERSION to it, the webhook and the
	// kubernetes drivers send and label it. Optional.
	Version string `json:"version,omitempty"`
	ProcessSpec
	WebhookSpec
	KubernetesSpec
}

// ProcessSpec is the process driver's part of a Spec.
type ProcessSpec struct {
	// Command is the program and its arguments, run without a shell.
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Dir     string            `json:"dir,omitempty"`
	// GracePeriod is how long a process has between SIGTERM and SIGKILL.
	GracePeriod wire.Duration `json:"gracePeriod,omitempty"`
}

// WebhookSpec is the webhook driver's part of a Spec.
type WebhookSpec struct {
	URL string `json:"url,omitempty"`
	// Secret signs the requests. SecretEnv names an environment variable
	// holding it instead, which keeps it out of the log and the API.
	Secret    string `json:"secret,omitempty"`
	SecretEnv string `json:"secretEnv,omitempty"`
	// ReadCurrent makes Current a GET of URL answering {"replicas": n};
	// without it Current is the last acknowledged count.
	ReadCurrent bool          `json:"readCurrent,omitempty"`
	MaxAttempts int           `json:"maxAttempts,omitempty"`
	Backoff     wire.Duration `json:"backoff,omitempty"`
	Timeout     wire.Duration `json:"timeout,omitempty"`
	// Template is opaque to Steward: a JSON object sent with every call,
	// what the receiver starts its instances from. Changing it is a new
	// version to roll out.
	Template json.RawMessage `json:"template,omitempty"`
}

// KubernetesSpec is the kubernetes driver's part of a Spec.
type KubernetesSpec struct {
	// Kind is Deployment (the default) or StatefulSet.
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
	// Namespace defaults to the service account's own.
	Namespace string `json:"namespace,omitempty"`
	// APIServer overrides the in-cluster KUBERNETES_SERVICE_HOST/PORT.
	APIServer string `json:"apiServer,omitempty"`
	// Image is set on the pod template's Container (its first if empty):
	// changing it is a new version, which the workload rolls out itself.
	Image     string `json:"image,omitempty"`
	Container string `json:"container,omitempty"`
}

// Defaults of the fields left out.
const (
	DefaultGracePeriod = 10 * time.Second
	DefaultMaxAttempts = 5
	DefaultBackoff     = 200 * time.Millisecond
	DefaultTimeout     = 10 * time.Second
	DefaultKind        = "Deployment"
)

// Validate reports every problem with the spec, each naming its field as
// it sits in a scaler spec ("driver.command"), as an
// hpa.ValidationError.
func (s *Spec) Validate() error {
	var errs hpa.ValidationError
	add := func(field, format string, args ...any) {
		errs = append(errs, &hpa.FieldError{Field: "driver." + field, Message: fmt.Sprintf(format, args...)})
	}
	// A field of another type is a mistake worth naming: the scaler would
	// silently ignore it.
	foreign := func(typ string, set map[string]bool) {
		for _, f := range []string{"command", "env", "dir", "gracePeriod", "url", "secret", "secretEnv",
			"readCurrent", "maxAttempts", "backoff", "timeout", "template", "kind", "name", "namespace", "apiServer", "image", "container"} {
			if set[f] && fieldType[f] != typ && !(f == "env" && typ == TypeKubernetes) {
				add(f, "is a %s driver field, not a %s one", fieldType[f], typ)
			}
		}
	}
	if string(s.Template) == "null" {
		s.Template = nil // as if omitted, as JSON null is for every other field
	}
	set := map[string]bool{
		"command": len(s.Command) > 0, "env": len(s.Env) > 0, "dir": s.Dir != "", "gracePeriod": s.GracePeriod != 0,
		"url": s.URL != "", "secret": s.Secret != "", "secretEnv": s.SecretEnv != "", "readCurrent": s.ReadCurrent,
		"maxAttempts": s.MaxAttempts != 0, "backoff": s.Backoff != 0, "timeout": s.Timeout != 0,
		"template": len(s.Template) > 0,
		"kind":     s.Kind != "", "name": s.Name != "", "namespace": s.Namespace != "", "apiServer": s.APIServer != "",
		"image": s.Image != "", "container": s.Container != "",
	}
	if s.Version != "" && !validVersion(s.Version) {
		add("version", "must be 1 to %d bytes of UTF-8 without control characters", MaxVersionBytes)
	}
	switch s.Type {
	case TypeProcess:
		foreign(TypeProcess, set)
		if len(s.Command) == 0 || s.Command[0] == "" {
			add("command", "is required: the program and its arguments")
		}
		if s.GracePeriod < 0 {
			add("gracePeriod", "must not be negative")
		}
		for k := range s.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				add("env", "has an invalid name %q", k)
			}
		}
	case TypeWebhook:
		foreign(TypeWebhook, set)
		if s.URL == "" {
			add("url", "is required")
		} else if !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://") {
			add("url", "must be an http or https URL")
		}
		if (s.Secret == "") == (s.SecretEnv == "") {
			add("secret", "or secretEnv is required, not both: the requests are signed")
		}
		if s.MaxAttempts < 0 {
			add("maxAttempts", "must not be negative")
		}
		if s.Backoff < 0 {
			add("backoff", "must not be negative")
		}
		if s.Timeout < 0 {
			add("timeout", "must not be negative")
		}
		if len(s.Template) > 0 {
			if len(s.Template) > MaxTemplateBytes {
				add("template", "must be at most %d bytes", MaxTemplateBytes)
			} else if b, ok := canonicalObject(s.Template); !ok {
				add("template", "must be a JSON object")
			} else {
				s.Template = b
			}
		}
	case TypeKubernetes:
		foreign(TypeKubernetes, set)
		if s.Kind != "" && s.Kind != "Deployment" && s.Kind != "StatefulSet" {
			add("kind", "must be Deployment or StatefulSet, not %q", s.Kind)
		}
		if s.Name == "" {
			add("name", "is required: the workload's name")
		}
		if s.APIServer != "" && !strings.HasPrefix(s.APIServer, "https://") && !strings.HasPrefix(s.APIServer, "http://") {
			add("apiServer", "must be an http or https URL")
		}
		if s.Image != "" && (len(s.Image) > 512 || strings.ContainsFunc(s.Image, func(r rune) bool { return r <= ' ' || r == 0x7f })) {
			add("image", "must be an image reference: at most 512 bytes, no spaces or control characters")
		}
		if s.Container != "" && !dnsLabel(s.Container) {
			add("container", "must be a container name: a DNS label (lower-case letters, digits and '-', at most 63)")
		}
		if s.Container != "" && s.Image == "" {
			add("container", "names where image goes: set image too")
		}
		if len(s.Env) > 0 && s.Image == "" {
			add("env", "is set on the container image runs in: set image too")
		}
		for k := range s.Env {
			if !envName(k) {
				add("env", "has an invalid name %q: Kubernetes takes letters, digits, '_', '-' and '.', not starting with a digit", k)
			}
		}

	case "":
		add("type", "is required: process, webhook or kubernetes")
	default:
		add("type", "must be process, webhook or kubernetes, not %q", s.Type)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

var fieldType = map[string]string{
	"command": TypeProcess, "env": TypeProcess, "dir": TypeProcess, "gracePeriod": TypeProcess,
	"url": TypeWebhook, "secret": TypeWebhook, "secretEnv": TypeWebhook, "readCurrent": TypeWebhook,
	"maxAttempts": TypeWebhook, "backoff": TypeWebhook, "timeout": TypeWebhook, "template": TypeWebhook,
	"kind": TypeKubernetes, "name": TypeKubernetes, "namespace": TypeKubernetes, "apiServer": TypeKubernetes,
	"image": TypeKubernetes, "container": TypeKubernetes,
}

// envName is Kubernetes' rule for an environment variable's name.
func envName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-' || b == '.') {
			return false
		}
	}
	return true
}

// dnsLabel is Kubernetes' rule for a container's name (RFC 1123 label).
func dnsLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-') {
			return false
		}
	}
	return true
}

// Deps is what a driver takes from its surroundings rather than its spec.
type Deps struct {
	// Service is the name of the service scaled: the webhook body's
	// "service" and the process driver's instance ID prefix.
	Service string
	Logger  *slog.Logger
	// Getenv reads the environment (os.Getenv if nil): the webhook's
	// secretEnv, the in-cluster KUBERNETES_SERVICE_HOST and _PORT.
	Getenv func(string) string
	// HTTPClient carries the webhook's requests (a client of its own if
	// nil). The kubernetes driver builds its own, trusting the cluster CA.
	HTTPClient *http.Client
	// ServiceAccountDir holds token, ca.crt and namespace (the in-cluster
	// /var/run/secrets/kubernetes.io/serviceaccount if empty).
	ServiceAccountDir string
}

func (d *Deps) defaults() {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Getenv == nil {
		d.Getenv = os.Getenv
	}
	if d.ServiceAccountDir == "" {
		d.ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	}
}

// New validates the spec and returns its driver.
func New(spec Spec, deps Deps) (Driver, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	deps.defaults()
	switch spec.Type {
	case TypeProcess:
		return NewProcess(spec.ProcessSpec, deps), nil
	case TypeWebhook:
		return NewWebhook(spec.WebhookSpec, deps)
	default:
		return NewKubernetes(spec.KubernetesSpec, deps)
	}
}
