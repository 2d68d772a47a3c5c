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

-- Log entries kept after the stream was trimmed below them, so history
-- (e.g. GET /v1/history on the config service) reaches past the stream.
CREATE TABLE qlog_history (
    service     text        NOT NULL,
    revision    bigint      NOT NULL CHECK (revision > 0),
    proposed_at timestamptz NOT NULL,
    entry       bytea       NOT NULL,
    PRIMARY KEY (service, revision)
);
