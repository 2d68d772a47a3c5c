package ledger

import (
	"errors"
	"fmt"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/strategy"
)

// MaxNameBytes bounds a scaler's name.
const MaxNameBytes = 128

// ValidateName checks a scaler name: 1 to MaxNameBytes of letters,
// digits, '.', '_' and '-', one URL path segment as it is, other than
// "." and "..".
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameBytes || name == "." || name == ".." {
		return fault.New(fault.Invalid, "scaler name: want 1 to %d of letters, digits, '.', '_' and '-', other than . and ..", MaxNameBytes)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '-') {
			return fault.New(fault.Invalid, "scaler name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// Validate fills the autoscaler's defaults and checks the whole spec
// (web.Decode calls it). It returns nil or an Invalid fault whose
// "errors" list names every field in the way, with the
// hpa.ValidationError as its cause.
func (s *Spec) Validate() error {
	err := s.normalize()
	if err == nil {
		return nil
	}
	var v hpa.ValidationError
	errors.As(err, &v)
	type fieldProblem struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	}
	fields := make([]fieldProblem, len(v))
	for i, e := range v {
		fields[i] = fieldProblem{e.Field, e.Message}
	}
	return fault.Wrap(fault.Invalid, err, "invalid spec: "+v.Error()).With("errors", fields)
}

// normalize fills the autoscaler's defaults and checks the whole spec,
// returning nil or an hpa.ValidationError that names every field
// in the way.
func (s *Spec) normalize() error {
	var errs hpa.ValidationError
	if err := catalog.ValidateService(s.Service); err != nil {
		errs = append(errs, &hpa.FieldError{Field: "service", Message: err.Error()})
	}
	s.Defaults()
	if s.Strategy == nil {
		s.Strategy = &strategy.Spec{}
	}
	s.Strategy.Defaults()
	collect := func(err error) {
		var v hpa.ValidationError
		if errors.As(err, &v) {
			errs = append(errs, v...)
		} else if err != nil {
			errs = append(errs, &hpa.FieldError{Field: "spec", Message: err.Error()})
		}
	}
	collect(s.Spec.Validate())
	collect(s.Driver.Validate())
	collect(s.Strategy.Validate())
	if s.Strategy.Type == strategy.Canary {
		// A canary runs the new version beside the old and splits the
		// traffic between them by version: it needs a driver that runs
		// instances of two templates at once, and a version to split on.
		if s.Driver.Type != driver.TypeProcess {
			errs = append(errs, &hpa.FieldError{Field: "strategy.type", Message: fmt.Sprintf("Canary needs the process driver, which runs two versions side by side; the %s driver rolls out with RollingUpdate", s.Driver.Type)})
		}
		if s.Driver.Version == "" {
			errs = append(errs, &hpa.FieldError{Field: "driver.version", Message: "is required with a Canary: the gateway splits traffic by version"})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
