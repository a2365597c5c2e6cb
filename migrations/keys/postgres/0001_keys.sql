-- The key store apart from the event database: data keys of tenants and of persons and
-- conversations, wrapped by the master key (or a KMS). NULL once destroyed; the tables are
-- vacuumed after a destruction.
CREATE TABLE tenant_keys (
    tenant_id    UUID        NOT NULL,
    wrapped_key  BYTEA,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    destroyed_at TIMESTAMPTZ,
    PRIMARY KEY (tenant_id)
);

CREATE TABLE subject_keys (
    tenant_id    UUID        NOT NULL,
    subject_id   UUID        NOT NULL,
    wrapped_key  BYTEA,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    destroyed_at TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, subject_id)
);
