package qlog

// ParseStreamInfoLast is parseStreamInfoLast, for the external tests that
// feed it real answers of real servers.
var ParseStreamInfoLast = parseStreamInfoLast

// KeyedWatches counts the watches in the index that wakes keyed watches.
func (l *Log) KeyedWatches() int {
	l.keyed.mu.Lock()
	defer l.keyed.mu.Unlock()
	n := 0
	for _, m := range []map[string]*keyGroup{l.keyed.keys, l.keyed.prefixes} {
		for _, g := range m {
			n += len(g.watches)
		}
	}
	return n
}

// NoteStall records a stall of writes as this replica would on seeing one.
func (l *Log) NoteStall() { l.noteStall() }

// ExpiryHeld reports whether RunExpiry would propose nothing now.
func (l *Log) ExpiryHeld() bool { return l.stalledWithin(l.cfg.ExpiryGrace) }
