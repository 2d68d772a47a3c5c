// Package logging builds the structured logger every Steward process uses:
// JSON when the output is not a terminal (containers, CI), text when it is.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/term"
)

// Format selects the log encoding. It decodes from STEWARD_LOG_FORMAT.
type Format string

// The formats. Auto picks text on a terminal and JSON elsewhere.
const (
	Auto Format = "auto"
	JSON Format = "json"
	Text Format = "text"
)

// UnmarshalText lets envconfig refuse an unknown format by name.
func (f *Format) UnmarshalText(b []byte) error {
	switch v := Format(b); v {
	case Auto, JSON, Text:
		*f = v
		return nil
	default:
		return fmt.Errorf("want auto, json or text")
	}
}

// New returns a logger writing to w in format at level. No key appears
// twice on one of its lines, however many layers add it (see unique).
func New(w io.Writer, format Format, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == Text || (format == Auto && isTerminal(w)) {
		return slog.New(newUnique(slog.NewTextHandler(w, opts)))
	}
	return slog.New(newUnique(slog.NewJSONHandler(w, opts)))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
