package logging

import (
	"context"
	"log/slog"
	"slices"
)

// unique is the one place that keeps a key from appearing twice on a line.
// Loggers are built in layers that each name what they know: steward dev
// adds "service" to the logger it hands a service, web.NewHandler adds it
// again for its request lines, qlog adds "service" and "replica" for its
// own, and domain code logs "service" for the governed service it speaks
// of (a registry guard, a scaler driver). slog's handlers write every
// layer, so a line read "service":"registry","service":"registry". Making
// each layer ask whether an outer one already said it is not possible
// (a *slog.Logger does not tell its attributes), so the handler merges
// them: a repeated key keeps its first position and takes the innermost
// value, the one a reader decoding the line already got, since JSON
// decoders (Go's, JavaScript's, Python's) keep the last of a repeated name.
//
// Attributes added after a WithGroup live inside that group and are merged
// among themselves only; keys of different groups never collide.
//
// Most lines repeat nothing: for them the merged attributes are written
// ahead of time, once per logger (pre, which slog's handlers format when
// WithAttrs is called), and a line costs what it would without unique.
// Only a line that repeats a key is rebuilt on inner.
type unique struct {
	inner slog.Handler
	attrs []slog.Attr  // added by WithAttrs since the last group, merged, not yet given to inner
	pre   slog.Handler // inner with attrs, for lines that repeat none of their keys
}

func (h *unique) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *unique) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	attrs := merge(append([]slog.Attr(nil), h.attrs...), as...)
	return &unique{inner: h.inner, attrs: attrs, pre: h.inner.WithAttrs(attrs)}
}

func (h *unique) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	inner := h.inner
	if len(h.attrs) > 0 {
		inner = inner.WithAttrs(h.attrs)
	}
	inner = inner.WithGroup(name)
	return &unique{inner: inner, pre: inner}
}

func newUnique(inner slog.Handler) *unique { return &unique{inner: inner, pre: inner} }

func (h *unique) Handle(ctx context.Context, r slog.Record) error {
	if !h.repeats(r) {
		return h.pre.Handle(ctx, r)
	}
	var buf [16]slog.Attr
	all := append(buf[:0], h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		all = merge(all, a)
		return true
	})
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(all...)
	return h.inner.Handle(ctx, out)
}

// repeats says whether one of r's keys is one of h.attrs' or comes twice
// in r.
func (h *unique) repeats(r slog.Record) bool {
	var buf [16]string
	keys := buf[:0]
	for _, a := range h.attrs {
		keys = append(keys, a.Key)
	}
	repeated := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "" {
			return true
		}
		if slices.Contains(keys, a.Key) {
			repeated = true
			return false
		}
		keys = append(keys, a.Key)
		return true
	})
	return repeated
}

// merge adds each of as to dst, replacing the value of an attribute of the
// same key in place. An empty key (an inlined group) is never merged.
func merge(dst []slog.Attr, as ...slog.Attr) []slog.Attr {
next:
	for _, a := range as {
		if a.Key != "" {
			for i := range dst {
				if dst[i].Key == a.Key {
					dst[i] = a
					continue next
				}
			}
		}
		dst = append(dst, a)
	}
	return dst
}
