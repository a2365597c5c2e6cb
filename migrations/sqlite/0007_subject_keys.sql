-- One data key per person of a tenant; see the PostgreSQL migration of the same number.
CREATE TABLE subject_keys (
    tenant_id    BLOB    NOT NULL,
    subject_id   BLOB    NOT NULL,
    wrapped_key  BLOB,
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER,
    PRIMARY KEY (tenant_id, subject_id)
);
