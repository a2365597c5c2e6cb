-- Idempotency-Key of HTTP writes; see the PostgreSQL migration of the same number.
CREATE TABLE http_idempotency (
    tenant_id   TEXT    NOT NULL,
    credential  TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL,
    status      INTEGER NOT NULL,
    headers     TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, credential, key)
);
CREATE INDEX http_idempotency_by_age ON http_idempotency (created_at);
