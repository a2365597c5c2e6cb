-- Keys narrowed to scopes, with an expiry and a rotation grace; users provisioned from an
-- identity provider name their issuer.
ALTER TABLE dir_api_keys ADD COLUMN scopes TEXT;          -- space-separated; NULL: all the role allows
ALTER TABLE dir_api_keys ADD COLUMN expires_at BIGINT;    -- Unix ms; NULL: never
ALTER TABLE dir_api_keys ADD COLUMN previous_hash TEXT;   -- the secret before the last rotation, hex
ALTER TABLE dir_api_keys ADD COLUMN previous_until BIGINT;-- until when that one still works, Unix ms
ALTER TABLE dir_api_keys ADD COLUMN rotated_at BIGINT;
ALTER TABLE dir_users ADD COLUMN issuer TEXT;

-- When a key last opened a request: written at most once a minute per key by the process
-- that saw it. Not a read model (no event says it), so a rebuild leaves it alone.
CREATE TABLE api_key_last_used (
    tenant_id    TEXT   NOT NULL,
    key_id       TEXT   NOT NULL,
    last_used_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key_id)
);
