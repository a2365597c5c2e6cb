-- Idempotency-Key of HTTP writes: the first answer to a key, replayed to its retries.
-- Scoped by tenant and credential; kept 24 hours. `status` 0 marks a request still running.
CREATE TABLE http_idempotency (
    tenant_id   UUID    NOT NULL,
    credential  TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint BYTEA   NOT NULL,
    status      BIGINT  NOT NULL,
    headers     TEXT    NOT NULL,
    body        BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, credential, key)
);
CREATE INDEX http_idempotency_by_age ON http_idempotency (created_at);
