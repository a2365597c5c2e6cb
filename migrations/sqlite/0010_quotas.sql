-- Limits decided with the append under the write lock; see the PostgreSQL migration of the
-- same number. The SQLite backend counts and checks in the appending transaction.
ALTER TABLE tenant_heads ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenant_heads ADD COLUMN day INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenant_heads ADD COLUMN day_calls INTEGER NOT NULL DEFAULT 0;

UPDATE tenant_heads SET stored_bytes = COALESCE(
    (SELECT sum(length(e.payload) - 40) FROM events e WHERE e.tenant_id = tenant_heads.tenant_id), 0);
