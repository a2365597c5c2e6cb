-- The event store. Every table keyed by tenant has tenant_id first in its primary key and in
-- every unique constraint. UUIDs are 16-byte blobs.

CREATE TABLE tenant_keys (
    tenant_id    BLOB    NOT NULL,
    wrapped_key  BLOB,
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER,
    PRIMARY KEY (tenant_id)
) WITHOUT ROWID;

CREATE TABLE tenant_heads (
    tenant_id BLOB    NOT NULL,
    position  INTEGER NOT NULL,
    last_hash BLOB    NOT NULL,
    PRIMARY KEY (tenant_id)
) WITHOUT ROWID;

CREATE TABLE streams (
    tenant_id BLOB    NOT NULL,
    stream_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, stream_id)
) WITHOUT ROWID;

CREATE TABLE events (
    tenant_id      BLOB    NOT NULL,
    position       INTEGER NOT NULL,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    event_id       BLOB    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    payload        BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    prev_hash      BLOB    NOT NULL,
    hash           BLOB    NOT NULL,
    PRIMARY KEY (tenant_id, position),
    UNIQUE (tenant_id, stream_id, stream_version),
    UNIQUE (tenant_id, event_id)
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    tenant_id       BLOB    NOT NULL,
    key             TEXT    NOT NULL,
    request_hash    BLOB    NOT NULL,
    first_position  INTEGER NOT NULL,
    last_position   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;
