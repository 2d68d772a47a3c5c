package kv

import (
	"strings"
	"unicode/utf8"

	"github.com/stewardhq/steward/platform/fault"
)

// Limits from DESIGN.md, checked before anything is proposed.
const (
	MaxKeyBytes   = 1 << 10
	MaxValueBytes = 1 << 20
	MaxTxnOps     = 128
)

// ValidateKey checks a key: a '/'-separated path that starts with '/',
// has no empty, "." or ".." segment, no trailing '/', no control
// characters, is valid UTF-8, and is at most MaxKeyBytes long.
func ValidateKey(key string) error {
	if err := validatePath(key, "key"); err != nil {
		return err
	}
	if strings.HasSuffix(key, "/") {
		return fault.New(fault.Invalid, "key %q must not end with '/'", key)
	}
	return nil
}

// ValidatePrefix checks a prefix for listing, deleting or watching: like a
// key, but it may end with '/' and "/" alone means everything.
func ValidatePrefix(prefix string) error {
	if prefix == "/" {
		return nil
	}
	return validatePath(strings.TrimSuffix(prefix, "/"), "prefix")
}

func validatePath(p, what string) error {
	switch {
	case p == "":
		return fault.New(fault.Invalid, "%s is empty", what)
	case len(p) > MaxKeyBytes:
		return fault.New(fault.Invalid, "%s is %d bytes, over the limit of %d", what, len(p), MaxKeyBytes).With("limit", MaxKeyBytes)
	case p[0] != '/':
		return fault.New(fault.Invalid, "%s %q must start with '/'", what, p)
	case !utf8.ValidString(p):
		return fault.New(fault.Invalid, "%s is not valid UTF-8", what)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fault.New(fault.Invalid, "%s %q contains a control character", what, p)
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch seg {
		case "":
			return fault.New(fault.Invalid, "%s %q has an empty segment", what, p)
		case ".", "..":
			return fault.New(fault.Invalid, "%s %q has a %q segment", what, p, seg)
		}
	}
	return nil
}
