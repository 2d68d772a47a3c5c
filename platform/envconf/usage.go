package envconf

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

// Usage writes a table of the STEWARD_* variables the specs read: name,
// default and meaning (the field's desc tag). A variable read by more
// than one spec is listed once, as the first spec declares it.
func Usage(w io.Writer, specs ...any) error { return UsageExcept(w, nil, specs...) }

// UsageExcept is Usage without the variables named in except (without
// the STEWARD_ prefix): those a caller sets itself.
func UsageExcept(w io.Writer, except []string, specs ...any) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	seen := make(map[string]bool)
	for _, k := range except {
		seen[Prefix+"_"+k] = true
	}
	for _, spec := range specs {
		var buf bytes.Buffer
		// One line per variable, fields separated by a unit separator:
		// a desc may hold anything but a newline.
		const format = "{{range .}}{{usage_key .}}\x1f{{usage_default .}}\x1f{{usage_description .}}\n{{end}}"
		if err := envconfig.Usagef(Prefix, spec, &buf, format); err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), "\x1f", 3)
			if len(f) != 3 || seen[f[0]] {
				continue
			}
			seen[f[0]] = true
			def, desc := f[1], f[2]
			if def == "" {
				def = "-"
			}
			if desc == "" {
				desc = shared[strings.TrimPrefix(f[0], Prefix+"_")]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", f[0], def, desc)
		}
	}
	return tw.Flush()
}

// shared holds the meaning of variables declared in structs that carry no
// desc tag (web.Limits, embedded in every role's settings).
var shared = map[string]string{
	"MAX_WATCHES_PER_CLIENT": "watch streams, blocking queries and waiting campaigns one client may hold at once; one more is 429",
	"READ_HEADER_TIMEOUT":    "time a client has to send a request's headers",
	"IDLE_TIMEOUT":           "time a kept-alive connection may wait for the next request",
	"TRUSTED_PROXIES":        "proxies (addresses or CIDR prefixes, comma-separated) whose X-Forwarded-For names the client",
	"HTTP1_SERVER":           "what reads plain HTTP/1.1 requests: steward (its own lean path, net/http for the rest) or net/http",
}
