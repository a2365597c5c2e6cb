-- Tenant purge (GDPR erasure of a whole tenant). See the PostgreSQL migration of the same
-- number for the reasons.

CREATE TRIGGER tenant_heads_refuse_shredded BEFORE INSERT ON tenant_heads
    WHEN EXISTS (SELECT 1 FROM tenant_keys k WHERE k.tenant_id = NEW.tenant_id AND k.wrapped_key IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'tenantry: tenant key destroyed');
END;

CREATE TABLE tenant_purges (
    tenant_id      TEXT    NOT NULL,
    requested_by   TEXT    NOT NULL,
    requested_at   INTEGER NOT NULL,
    step           TEXT    NOT NULL,
    events_deleted INTEGER NOT NULL DEFAULT 0,
    rows_deleted   INTEGER NOT NULL DEFAULT 0,
    finished_at    INTEGER,
    PRIMARY KEY (tenant_id)
);
