package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"
)

// table is rows under a header, as a person reads them.
type table struct {
	header []string
	rows   [][]string
	// footer, if set, is a line under the rows.
	footer string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// write aligns t's columns with tabwriter.
func (t table) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if t.footer != "" {
		_, err := fmt.Fprintln(w, t.footer)
		return err
	}
	return nil
}

// show prints v as -o asks: JSON or YAML of v itself (YAML converted
// from the JSON, so that field names are the API's), or the table tab
// makes of it.
func (a *app) show(v any, tab func() table) error {
	if a.output == "table" {
		return tab().write(a.stdout)
	}
	b, err := encode(v, a.output, true)
	if err != nil {
		return err
	}
	_, err = a.stdout.Write(b)
	return err
}

// event prints one item of a stream as soon as it comes: a line of JSON
// (-o json), a YAML document (-o yaml), or the line line makes.
func (a *app) event(v any, line func() string) error {
	var b []byte
	switch a.output {
	case "table":
		b = []byte(line() + "\n")
	case "yaml":
		doc, err := encode(v, a.output, false)
		if err != nil {
			return err
		}
		b = append([]byte("---\n"), doc...)
	default:
		var err error
		if b, err = encode(v, a.output, false); err != nil {
			return err
		}
	}
	_, err := a.stdout.Write(b)
	return err
}

// encode is v as JSON (indented for a person, or on one line for a
// stream) or YAML, ending in a newline.
func encode(v any, format string, indented bool) ([]byte, error) {
	b, err := json.Marshal(v)
	if indented && format == "json" {
		b, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		return nil, err
	}
	if format == "yaml" {
		return yaml.JSONToYAML(b)
	}
	return append(b, '\n'), nil
}

// readDocument reads the JSON or YAML document in file ("-": stdin) and
// returns it as JSON, which is what Steward takes.
func (a *app) readDocument(file string) (json.RawMessage, error) {
	var (
		b   []byte
		err error
	)
	if file == "-" {
		b, err = io.ReadAll(a.stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, err
	}
	if json.Valid(b) {
		return b, nil
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: neither JSON nor YAML: %w", file, err)
	}
	return j, nil
}

// compact is a JSON document on one line.
func compact(doc json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, doc); err != nil {
		return string(doc)
	}
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// timestamp is t in UTC to the second, "" for the zero time.
func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// orNone is s, or "<none>" when it is empty, so that a table's column
// never shifts.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
