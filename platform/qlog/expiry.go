package qlog

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// Expiries tracks deadlines (leases, TTL keys, heartbeats, election terms)
// inside a state machine, for deterministic expiry: no replica deletes
// anything on its own clock. A replica that sees something due proposes an
// expire command naming the ID and the revision it last saw it renewed at;
// the state machine applies it only if Expired holds at the entry's log
// time. Any replica may propose; duplicates and expiries raced by a renewal
// are applied no-ops, identical on every replica.
//
// Expiries is part of the state machine's state: a state machine either
// rebuilds it in Restore from its own records or writes Deadlines into its
// snapshot and Loads them back.
type Expiries struct {
	byID map[string]deadline
}

type deadline struct {
	at      int64 // Unix nanoseconds of log time
	renewed int64 // revision of the last grant or renewal
}

// Deadline is one tracked deadline, for snapshots.
type Deadline struct {
	ID      string    `json:"id"`
	At      time.Time `json:"at"`
	Renewed int64     `json:"renewed"`
}

// Deadlines returns every tracked deadline sorted by ID.
func (x *Expiries) Deadlines() []Deadline {
	out := make([]Deadline, 0, len(x.byID))
	for id, d := range x.byID {
		out = append(out, Deadline{ID: id, At: time.Unix(0, d.at).UTC(), Renewed: d.renewed})
	}
	slices.SortFunc(out, func(a, b Deadline) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Load adds deadlines (from Deadlines) to x.
func (x *Expiries) Load(ds []Deadline) {
	for _, d := range ds {
		x.Set(d.ID, d.At, d.Renewed)
	}
}

// Due is one thing whose deadline passed.
type Due struct {
	ID string
	// NotRenewedSince is the revision of its last renewal, to be carried in
	// the expire command so that a renewal racing the expiry wins.
	NotRenewedSince int64
}

// NewExpiries returns an empty index.
func NewExpiries() *Expiries { return &Expiries{byID: map[string]deadline{}} }

// Set grants or renews id at revision rev until at.
func (x *Expiries) Set(id string, at time.Time, rev int64) {
	x.byID[id] = deadline{at: at.UnixNano(), renewed: rev}
}

// Remove forgets id (deleted, or no longer expiring).
func (x *Expiries) Remove(id string) { delete(x.byID, id) }

// Len returns how many deadlines are tracked.
func (x *Expiries) Len() int { return len(x.byID) }

// Expired is the precondition of an expire command applied at log time now:
// id is tracked, was not renewed after notRenewedSince, and its deadline
// has passed.
func (x *Expiries) Expired(id string, notRenewedSince int64, now time.Time) bool {
	d, ok := x.byID[id]
	return ok && d.renewed <= notRenewedSince && d.at <= now.UnixNano()
}

// Due returns up to limit IDs whose deadline is at or before now, earliest
// first (ties by ID, so the order never depends on map iteration).
func (x *Expiries) Due(now time.Time, limit int) []Due {
	type item struct {
		Due
		at int64
	}
	var due []item
	for id, d := range x.byID {
		if d.at <= now.UnixNano() {
			due = append(due, item{Due{id, d.renewed}, d.at})
		}
	}
	slices.SortFunc(due, func(a, b item) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.ID, b.ID))
	})
	out := make([]Due, 0, min(len(due), limit))
	for _, it := range due[:min(len(due), limit)] {
		out = append(out, it.Due)
	}
	return out
}

// RunExpiry proposes expiry commands until ctx ends. Every interval it
// calls due under a serializable read with the proposer's clock, and
// proposes each command it returns. Commands must be self-checking (see
// Expiries.Expired), so several replicas running RunExpiry at once is safe.
func (l *Log) RunExpiry(ctx context.Context, interval time.Duration, due func(now time.Time) [][]byte) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.ctx.Done():
			return
		case <-tick.C:
		}
		var cmds [][]byte
		if err := l.Read(ctx, Serializable, func(int64) error {
			// Checked under the read, after any late entry this state
			// holds noted its stall: renewals may not have been written
			// during a stall, so their clients get the grace to renew
			// before anyone is expired.
			if !l.stalledWithin(l.cfg.ExpiryGrace) {
				cmds = due(l.cfg.Clock())
			}
			return nil
		}); err != nil {
			continue // not ready or failed: nothing to propose from
		}
		for _, c := range cmds {
			// A short deadline: an expiry still queued when it passes is
			// never sent, rather than landing after the clients renewed.
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := l.Propose(pctx, c, ProposeOptions{})
			cancel()
			if err != nil && ctx.Err() == nil {
				l.logger.Warn("qlog expiry proposal failed", "err", err)
			}
		}
	}
}
