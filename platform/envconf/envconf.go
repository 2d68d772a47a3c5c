// Package envconf loads a process's STEWARD_* settings with envconfig and
// turns any failure into one line that names the variable, so a bad value
// stops the process with a message an operator can act on.
package envconf

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/kelseyhightower/envconfig"
)

// Prefix is the prefix of every Steward environment variable.
const Prefix = "STEWARD"

// Load fills spec from STEWARD_* variables. Types may implement
// encoding.TextUnmarshaler or envconfig.Decoder to check their own values.
func Load(spec any) error {
	err := envconfig.Process(Prefix, spec)
	if err == nil {
		return nil
	}
	var pe *envconfig.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("invalid %s=%q: %v", pe.KeyName, pe.Value, reason(pe.Err))
	}
	return fmt.Errorf("configuration: %v", err)
}

// reason drops strconv's "strconv.ParseInt: parsing "x": " preamble,
// which repeats the value the message already shows.
func reason(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// Addr is a listen address, host:port (host may be empty, port 0 picks a
// free port). Declaring a setting as Addr makes a typo fail at start with
// the variable's name instead of at the first listen.
type Addr string

// UnmarshalText checks the host:port form.
func (a *Addr) UnmarshalText(b []byte) error {
	_, port, err := net.SplitHostPort(string(b))
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("want host:port with a port from 0 to 65535")
	}
	*a = Addr(b)
	return nil
}
