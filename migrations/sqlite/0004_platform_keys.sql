-- Credentials that belong to no tenant: the bootstrap super_admin key. Only a keyed hash of
-- the secret is kept.
CREATE TABLE platform_keys (
    key_id      TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    role        TEXT NOT NULL,
    PRIMARY KEY (key_id)
);

-- Authentication finds a key by its id before it knows the tenant.
CREATE INDEX dir_api_keys_by_key ON dir_api_keys (key_id);
