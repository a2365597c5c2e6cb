-- Tenant purge (GDPR erasure of a whole tenant).

-- A purged tenant's log may never start again: its key is destroyed (wrapped_key NULL) and
-- its head deleted, so an append from a process that still holds the key in memory would
-- re-create the head. Refuse that. Costs one key lookup per tenant's first append only.
CREATE FUNCTION tenantry_refuse_shredded_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM tenant_keys k WHERE k.tenant_id = NEW.tenant_id AND k.wrapped_key IS NULL) THEN
        RAISE EXCEPTION 'tenantry: tenant key destroyed' USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER tenant_heads_refuse_shredded BEFORE INSERT ON tenant_heads
    FOR EACH ROW EXECUTE FUNCTION tenantry_refuse_shredded_head();

-- The purge state machine: one row per tenant, advanced step by step, so a purge killed at
-- any step resumes on the next start. Holds no personal data.
CREATE TABLE tenant_purges (
    tenant_id      TEXT   NOT NULL,
    requested_by   TEXT   NOT NULL,
    requested_at   BIGINT NOT NULL,
    step           TEXT   NOT NULL,
    events_deleted BIGINT NOT NULL DEFAULT 0,
    rows_deleted   BIGINT NOT NULL DEFAULT 0,
    finished_at    BIGINT,
    PRIMARY KEY (tenant_id)
);
