-- Model provider credentials as listed: never the secret, only its last characters and a
-- fingerprint (the secret stays in the log, encrypted with the tenant's key).
CREATE TABLE dir_credentials (
    tenant_id     TEXT   NOT NULL,
    credential_id TEXT   NOT NULL,
    provider      TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    last4         TEXT   NOT NULL,
    fingerprint   TEXT   NOT NULL,
    base_url      TEXT,
    removed       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    rotated_at    BIGINT,
    PRIMARY KEY (tenant_id, credential_id)
);
