package lease

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/stewardhq/steward/platform/fault"
)

// ValidateName checks an election name: 1 to MaxNameBytes of letters,
// digits, '.', '_' and '-', other than "." and "..", so that it is one
// URL path segment as it is (URL resolution removes a "." or ".."
// segment, as curl and proxies apply it) and can name a fence in the
// config service (X-Steward-Fence: name:token).
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameBytes {
		return fault.New(fault.Invalid, "election name %q: want 1 to %d characters", truncate(name), MaxNameBytes).With("limit", MaxNameBytes)
	}
	if name == "." || name == ".." {
		return fault.New(fault.Invalid, "election name %q: not . or ..", name)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '-') {
			return fault.New(fault.Invalid, "election name %q: only letters, digits, '.', '_' and '-' are allowed", truncate(name))
		}
	}
	return nil
}

// ValidateCandidate checks a candidate ID: 1 to MaxCandidate bytes of
// UTF-8 without control characters. It identifies a campaigner within an
// election, so two processes must never share one.
func ValidateCandidate(c string) error {
	if c == "" || len(c) > MaxCandidate {
		return fault.New(fault.Invalid, "candidate: want 1 to %d bytes", MaxCandidate).With("limit", MaxCandidate)
	}
	if !utf8.ValidString(c) {
		return fault.New(fault.Invalid, "candidate: not valid UTF-8")
	}
	for _, r := range c {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fault.New(fault.Invalid, "candidate: control characters are not allowed")
		}
	}
	return nil
}

// ParseTTL parses a lease TTL such as "10s" and checks it is from MinTTL
// to MaxTTL.
func ParseTTL(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < MinTTL || d > MaxTTL {
		return 0, fault.New(fault.Invalid, "ttl %q: want a duration from %s to %s, such as \"10s\"", truncate(s), MinTTL, MaxTTL)
	}
	return d, nil
}

// ValidateValue checks a leader's value: any JSON document up to
// MaxValueBytes (the service's decoder already checked it is JSON).
func ValidateValue(v json.RawMessage) error {
	if len(v) > MaxValueBytes {
		return fault.New(fault.TooLarge, "value of %d bytes is over the limit of %d", len(v), MaxValueBytes).With("limit", MaxValueBytes)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
