-- The key store apart from the event database: data keys of tenants and of persons and
-- conversations, wrapped by the master key (or a KMS). NULL once destroyed. Opened with
-- secure_delete, so a destroyed key's bytes are zeroed in the file.
CREATE TABLE tenant_keys (
    tenant_id    BLOB    NOT NULL,
    wrapped_key  BLOB,
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER,
    PRIMARY KEY (tenant_id)
) WITHOUT ROWID;

CREATE TABLE subject_keys (
    tenant_id    BLOB    NOT NULL,
    subject_id   BLOB    NOT NULL,
    wrapped_key  BLOB,
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER,
    PRIMARY KEY (tenant_id, subject_id)
);
