-- The event store. Every table keyed by tenant has tenant_id first in its primary key and in
-- every unique constraint, so the schema distributes by tenant_id on Citus unchanged.

-- One data key per tenant, wrapped by the master key. NULL once destroyed (crypto-shredding).
CREATE TABLE tenant_keys (
    tenant_id    UUID        NOT NULL,
    wrapped_key  BYTEA,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    destroyed_at TIMESTAMPTZ,
    PRIMARY KEY (tenant_id)
);

-- The head of each tenant's log. Appends lock this row: positions are allocated under it, so
-- they commit in order with no gaps.
CREATE TABLE tenant_heads (
    tenant_id UUID   NOT NULL,
    position  BIGINT NOT NULL,
    last_hash BYTEA  NOT NULL,
    PRIMARY KEY (tenant_id)
);

CREATE TABLE streams (
    tenant_id UUID   NOT NULL,
    stream_id TEXT   NOT NULL,
    version   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, stream_id)
);

CREATE TABLE events (
    tenant_id      UUID     NOT NULL,
    position       BIGINT   NOT NULL,
    stream_id      TEXT     NOT NULL,
    stream_version BIGINT   NOT NULL,
    event_id       UUID     NOT NULL,
    event_type     TEXT     NOT NULL,
    schema_version SMALLINT NOT NULL,
    recorded_at    BIGINT   NOT NULL, -- Unix milliseconds; part of the hash chain
    payload        BYTEA    NOT NULL, -- nonce || XChaCha20-Poly1305 ciphertext
    metadata       BYTEA    NOT NULL, -- nonce || XChaCha20-Poly1305 ciphertext
    prev_hash      BYTEA    NOT NULL,
    hash           BYTEA    NOT NULL,
    PRIMARY KEY (tenant_id, position),
    CONSTRAINT events_stream_version_key UNIQUE (tenant_id, stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (tenant_id, event_id)
);

CREATE TABLE idempotency_keys (
    tenant_id       UUID   NOT NULL,
    key             TEXT   NOT NULL,
    request_hash    BYTEA  NOT NULL,
    first_position  BIGINT NOT NULL,
    last_position   BIGINT NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant_id, key)
);
