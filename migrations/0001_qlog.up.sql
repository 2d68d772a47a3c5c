-- Snapshots of each service's replicated state machine (platform/qlog).
-- A starting replica restores the newest snapshot whose checksum verifies,
-- then replays the stream from revision + 1.
CREATE TABLE qlog_snapshots (
    service    text        NOT NULL,
    revision   bigint      NOT NULL CHECK (revision >= 0),
    replica    text        NOT NULL,
    seq        bigint      NOT NULL CHECK (seq >= 0), -- stream sequence the state reflects
    state      bytea       NOT NULL, -- qlog header (running hash, dedupe keys) + state machine
    checksum   bytea       NOT NULL, -- SHA-256 of state
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, revision, replica)
);

-- Events of every service, archived from the log by the replicas so that
-- history (e.g. GET /v1/history on the config service) reaches past what
-- the replicas keep in memory and the stream keeps on disk. Each replica
-- archives; inserts are idempotent, so several archivers agree.
CREATE TABLE qlog_history (
    service  text   NOT NULL,
    revision bigint NOT NULL CHECK (revision > 0),
    idx      int    NOT NULL CHECK (idx >= 0), -- the event's place within its revision
    key      text   NOT NULL,
    type     text   NOT NULL,
    data     bytea  NOT NULL,
    PRIMARY KEY (service, revision, idx)
);
CREATE INDEX qlog_history_by_key ON qlog_history (service, key, revision DESC);
