package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/sdk"
)

func (a *app) kvCommand() *cobra.Command {
	return group("kv", "Configuration keys: get, put, delete, list, watch, transactions, history",
		a.kvGet(), a.kvPut(), a.kvDel(), a.kvLs(), a.kvWatch(), a.kvTxn(), a.kvHistory())
}

// entryTable is entries as KEY VALUE REVISION rows.
func entryTable(entries ...sdk.KeyValue) table {
	t := table{header: []string{"KEY", "VALUE", "REVISION"}}
	for _, e := range entries {
		t.add(e.Key, compact(e.Value), itoa(e.ModRevision))
	}
	return t
}

func (a *app) kvGet() *cobra.Command {
	var (
		revision     int64
		serializable bool
	)
	c := runs(a, &cobra.Command{
		Use:   "get KEY",
		Short: "Read a key (-o json: the whole entry)",
		Example: `  stewardctl kv get /app/db/url
  stewardctl kv get /app/db/url --revision 42 -o json`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) (*sdk.KeyValue, error) {
		var opts []sdk.ReadOption
		if revision > 0 {
			opts = append(opts, sdk.AtRevision(revision))
		}
		if serializable {
			opts = append(opts, sdk.Serializable())
		}
		return c.KV().Get(ctx, args[0], opts...)
	}, oneEntry)
	c.Flags().Int64Var(&revision, "revision", 0, "read the key as it was at this revision")
	c.Flags().BoolVar(&serializable, "serializable", false, "read the replica's state without a round through the log (faster, maybe stale)")
	return c
}

func oneEntry(e *sdk.KeyValue) table { return entryTable(*e) }

// absolute is key or prefix with the leading slash every key has: the
// API takes "app/x" for "/app/x" in a path, but not in a query, so
// stewardctl takes it everywhere.
func absolute(key string) string {
	if strings.HasPrefix(key, "/") {
		return key
	}
	return "/" + key
}

func (a *app) kvPut() *cobra.Command {
	var (
		file       string
		ifRevision int64
		lease      int64
		fence      string
	)
	c := &cobra.Command{
		Use:   "put KEY [VALUE]",
		Short: "Write a key: VALUE is a JSON document (or --file, - for stdin)",
		Long: `Write a key. VALUE is a JSON document: a string is quoted, '"postgres://db/app"'.
--if-revision N writes only while the key's revision is N (0: only if the key
does not exist) and exits with status 4 when it moved on.`,
		Example: `  stewardctl kv put /app/db/url '"postgres://db/app"'
  stewardctl kv put /app/limits --file limits.json --if-revision 42
  echo '{"replicas":3}' | stewardctl kv put /app/web --file -`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var value json.RawMessage
			switch {
			case len(args) == 2 && file != "":
				return usagef("give the value as an argument or with --file, not both")
			case len(args) == 2:
				value = json.RawMessage(args[1])
				if !json.Valid(value) {
					return usagef("the value %q is not JSON (a string is quoted: '\"%s\"')", args[1], args[1])
				}
			case file != "":
				b, err := a.readDocument(file)
				if err != nil {
					return err
				}
				value = b
			default:
				return usagef("no value: give it as an argument or with --file")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var opts []sdk.WriteOption
			if cmd.Flags().Changed("if-revision") {
				opts = append(opts, sdk.IfRevision(ifRevision))
			}
			if lease > 0 {
				opts = append(opts, sdk.WithLease(lease))
			}
			if fence != "" {
				opts = append(opts, sdk.WithFence(fence))
			}
			e, err := c.KV().Put(cmd.Context(), args[0], value, opts...)
			if err != nil {
				return err
			}
			return a.show(e, func() table { return oneEntry(e) })
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "read the value from this file (JSON or YAML; - for stdin)")
	c.Flags().Int64Var(&ifRevision, "if-revision", 0, "compare-and-swap: write only while the key's revision is this (0: only if absent)")
	c.Flags().Int64Var(&lease, "lease", 0, "attach the key to this lease: it is deleted when the lease ends")
	c.Flags().StringVar(&fence, "fence", "", "an election's fencing token, NAME:TOKEN: refused once a newer leader wrote")
	return c
}

func (a *app) kvDel() *cobra.Command {
	var (
		prefix     bool
		ifRevision int64
		fence      string
	)
	c := &cobra.Command{
		Use:     "del KEY | --prefix PREFIX",
		Aliases: []string{"rm", "delete"},
		Short:   "Delete a key, or every key under a prefix",
		Example: `  stewardctl kv del /app/db/url
  stewardctl kv del --prefix /app/`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if prefix && cmd.Flags().Changed("if-revision") {
				return usagef("--if-revision names one key's revision: not with --prefix")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var opts []sdk.WriteOption
			if ifRevision > 0 {
				opts = append(opts, sdk.IfRevision(ifRevision))
			}
			if fence != "" {
				opts = append(opts, sdk.WithFence(fence))
			}
			deleted := int64(1)
			if prefix {
				deleted, err = c.KV().DeletePrefix(cmd.Context(), absolute(args[0]), opts...)
			} else {
				err = c.KV().Delete(cmd.Context(), args[0], opts...)
			}
			if err != nil {
				return err
			}
			return a.show(map[string]int64{"deleted": deleted}, func() table {
				return table{header: []string{"DELETED"}, rows: [][]string{{itoa(deleted)}}}
			})
		},
	}
	c.Flags().BoolVar(&prefix, "prefix", false, "delete every key under the argument")
	c.Flags().Int64Var(&ifRevision, "if-revision", 0, "delete only while the key's revision is this")
	c.Flags().StringVar(&fence, "fence", "", "an election's fencing token, NAME:TOKEN")
	return c
}

func (a *app) kvLs() *cobra.Command {
	var o sdk.ListOptions
	c := runs(a, &cobra.Command{
		Use:     "ls [PREFIX]",
		Aliases: []string{"list"},
		Short:   "List the keys under a prefix (every key without one), page after page",
		Example: `  stewardctl kv ls /app/
  stewardctl kv ls --keys-only`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
	}, func(ctx context.Context, c *sdk.Client, args []string) ([]sdk.KeyValue, error) {
		entries := []sdk.KeyValue{}
		for e, err := range c.KV().All(ctx, prefixArg(args), o) {
			if err != nil {
				return nil, err
			}
			entries = append(entries, e)
		}
		return entries, nil
	}, func(entries []sdk.KeyValue) table {
		if !o.KeysOnly {
			return entryTable(entries...)
		}
		t := table{header: []string{"KEY", "REVISION"}}
		for _, e := range entries {
			t.add(e.Key, itoa(e.ModRevision))
		}
		return t
	})
	c.Flags().BoolVar(&o.KeysOnly, "keys-only", false, "list the keys without their values")
	c.Flags().IntVar(&o.Limit, "page-size", 0, "keys per request (0: the server's default)")
	return c
}

func (a *app) kvWatch() *cobra.Command {
	var (
		prefix       string
		fromRevision int64
	)
	c := &cobra.Command{
		Use:   "watch KEY | --prefix PREFIX",
		Short: "Print the changes to a key or a prefix as they happen, until Ctrl-C",
		Long: `Print the changes to a key or under a prefix as they happen, one line each
(TYPE KEY REVISION VALUE; -o json: one JSON object a line), until Ctrl-C. The
watch resumes by itself after a disconnect, with no gap and no repeat.
--from-revision N starts with the changes at revision N.`,
		Example: `  stewardctl kv watch /app/db/url
  stewardctl kv watch --prefix /app/ --from-revision 1 -o json`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := sdk.WatchOptions{FromRevision: fromRevision}
			switch {
			case len(args) == 1 && prefix != "":
				return usagef("watch a KEY or a --prefix, not both")
			case len(args) == 1:
				o.Key = absolute(args[0])
			case prefix == "":
				return usagef("watch what? give a KEY or --prefix")
			default:
				o.Prefix = absolute(prefix)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if o.FromRevision == 0 {
				// The config service starts a watch without fromRevision
				// at the oldest revision it holds, not at the next one
				// as its API document says: start after the current one,
				// as etcdctl does.
				page, err := c.KV().List(cmd.Context(), o.Key+o.Prefix, sdk.ListOptions{Limit: 1, KeysOnly: true})
				if err != nil {
					return err
				}
				o.FromRevision = page.Revision + 1
			}
			for ev, err := range c.KV().Watch(cmd.Context(), o) {
				if err != nil {
					return interrupted(cmd, err)
				}
				line := func() string {
					return strings.Join([]string{ev.Type, ev.Entry.Key, itoa(ev.Entry.ModRevision), compact(ev.Entry.Value)}, "\t")
				}
				if err := a.event(watchEvent{Type: ev.Type, KVEvent: ev}, line); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&prefix, "prefix", "", "watch every key under this prefix")
	c.Flags().Int64Var(&fromRevision, "from-revision", 0, "start with the changes at this revision (if the log still holds them)")
	return c
}

// watchEvent is a KVEvent with its type, which the SDK's JSON leaves
// out (it is the event's name in the stream).
type watchEvent struct {
	Type string `json:"type"`
	sdk.KVEvent
}

// interrupted is nil when err is the end of a stream that Ctrl-C asked
// for, else err.
func interrupted(cmd *cobra.Command, err error) error {
	if cmd.Context().Err() != nil && errors.Is(err, cmd.Context().Err()) {
		return nil
	}
	return err
}

func (a *app) kvTxn() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "txn -f FILE",
		Short: "Run a transaction: if every comparison holds, the success operations, else the failure ones",
		Long: `Run a transaction, atomically at one revision. FILE (JSON or YAML, - for
stdin) is the body of POST /v1/txn:

  {"compare": [{"key": "/app/db/url", "target": "modRevision", "op": "==", "value": 42}],
   "success": [{"put": {"key": "/app/db/url", "value": "postgres://db2/app"}}],
   "failure": [{"get": {"key": "/app/db/url"}}]}

It prints which branch ran and each operation's result.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usagef("txn needs -f FILE")
			}
			doc, err := a.readDocument(file)
			if err != nil {
				return err
			}
			var txn sdk.Txn
			if err := json.Unmarshal(doc, &txn); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.KV().Txn(cmd.Context(), txn)
			if err != nil {
				return err
			}
			return a.show(res, func() table { return txnTable(txn, res) })
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "the transaction, JSON or YAML (- for stdin)")
	return c
}

// txnTable is a transaction's branch and one row per operation of it
// with its result: results come in the branch's order, and a get of a
// missing key answers an empty result, which only the operation names.
func txnTable(txn sdk.Txn, res *sdk.TxnResult) table {
	branch, ops := "success", txn.Then
	if !res.Succeeded {
		branch, ops = "failure", txn.Else
	}
	t := table{header: []string{"BRANCH", "OP", "KEY", "VALUE", "REVISION"}}
	for i, op := range ops {
		var r sdk.OpResult
		if i < len(res.Results) {
			r = res.Results[i]
		}
		switch {
		case op.Put != nil && r.Put != nil:
			t.add(branch, "put", r.Put.Key, compact(r.Put.Value), itoa(r.Put.ModRevision))
		case op.Get != nil && r.Found && r.Get != nil:
			t.add(branch, "get", r.Get.Key, compact(r.Get.Value), itoa(r.Get.ModRevision))
		case op.Get != nil:
			t.add(branch, "get", op.Get.Key, "<not found>", "")
		case op.Delete != nil && r.Delete != nil:
			what := op.Delete.Key
			if op.Delete.Prefix != "" {
				what = op.Delete.Prefix + "*"
			}
			t.add(branch, "delete", what, fmt.Sprintf("(%d deleted)", r.Delete.Deleted), itoa(res.Revision))
		}
	}
	if len(ops) == 0 {
		t.add(branch, "", "", "", itoa(res.Revision))
	}
	return t
}

func (a *app) kvHistory() *cobra.Command {
	var limit int
	c := runs(a, &cobra.Command{Use: "history KEY", Short: "A key's versions still kept, newest first", Args: usageArgs(cobra.ExactArgs(1))},
		func(ctx context.Context, c *sdk.Client, args []string) ([]sdk.Version, error) {
			return list(c.KV().History(ctx, absolute(args[0]), limit))
		}, func(versions []sdk.Version) table {
			t := table{header: []string{"REVISION", "VERSION", "VALUE"}}
			for _, v := range versions {
				value := compact(v.Value)
				if v.Deleted {
					value = "<deleted>"
				}
				t.add(itoa(v.ModRevision), itoa(v.Version), value)
			}
			return t
		})
	c.Flags().IntVar(&limit, "limit", 0, "at most this many versions (0: the server's default)")
	return c
}
