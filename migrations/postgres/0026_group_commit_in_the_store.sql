-- Group commit decided by the store: a batch's appends are decided in the application,
-- between one call that locks and reads (below) and one statement that writes, in one
-- transaction. The batch function of 0025 decided each request in PL/pgSQL, which cost the
-- server about 0.15 ms an append; the store decides one in microseconds.
DROP FUNCTION tenantry_append_many(UUID[], BIGINT[], TEXT[], TEXT[], BYTEA[], INT[], INT[], TEXT[],
                                   BIGINT[], INT[], TEXT[], UUID[], TEXT[], SMALLINT[], BYTEA[], BYTEA[]);

-- Lock the heads of a batch's tenants (sorted by the caller) in tenant order, making the
-- heads of tenants appending for the first time (never a purged tenant's: its head may not be
-- made again), then read what the batch names: each stream's version, the event ids and the
-- idempotency keys already stored. The read is a statement after the lock's, so it sees
-- every commit made before the locks were granted. One row per head (kind 0), stream
-- (1), stored event id (2, in `name`) and stored key (3). Each name is an index lookup
-- whatever the plan (LATERAL with LIMIT keeps the planner from hash-joining a whole
-- table).
CREATE FUNCTION tenantry_lock_batch(
    p_tenants        UUID[],
    p_stream_tenants UUID[],
    p_streams        TEXT[],
    p_event_tenants  UUID[],
    p_event_ids      UUID[],
    p_key_tenants    UUID[],
    p_keys           TEXT[]
) RETURNS TABLE (kind SMALLINT, tenant_id UUID, name TEXT, version BIGINT, last_hash BYTEA,
                 stored_bytes BIGINT, day BIGINT, day_calls BIGINT)
-- Generic plans: custom ones would be planned again on every call (array arguments never
-- make a custom plan look dearer), which cost more than the reads.
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_locked INT;
BEGIN
    PERFORM 1 FROM tenant_heads h WHERE h.tenant_id = ANY (p_tenants) ORDER BY h.tenant_id FOR UPDATE;
    GET DIAGNOSTICS v_locked = ROW_COUNT;
    IF v_locked < cardinality(p_tenants) THEN
        INSERT INTO tenant_heads (tenant_id, position, last_hash)
        SELECT t.id, 0, decode(repeat('00', 32), 'hex') FROM unnest(p_tenants) AS t(id)
        WHERE NOT EXISTS (SELECT 1 FROM tenant_keys k WHERE k.tenant_id = t.id AND k.wrapped_key IS NULL)
        ORDER BY t.id
        ON CONFLICT ON CONSTRAINT tenant_heads_pkey DO NOTHING;
        PERFORM 1 FROM tenant_heads h WHERE h.tenant_id = ANY (p_tenants) ORDER BY h.tenant_id FOR UPDATE;
    END IF;
    RETURN QUERY
    SELECT 0::SMALLINT, h.tenant_id, NULL::TEXT, h.position, h.last_hash, h.stored_bytes, h.day, h.day_calls
    FROM tenant_heads h WHERE h.tenant_id = ANY (p_tenants)
    UNION ALL
    SELECT 1::SMALLINT, w.tenant_id, w.stream_id, s.version, NULL, NULL, NULL, NULL
    FROM unnest(p_stream_tenants, p_streams) AS w(tenant_id, stream_id),
         LATERAL (SELECT x.version FROM streams x
                  WHERE x.tenant_id = w.tenant_id AND x.stream_id = w.stream_id LIMIT 1) s
    UNION ALL
    SELECT 2::SMALLINT, w.tenant_id, w.event_id::TEXT, NULL, NULL, NULL, NULL, NULL
    FROM unnest(p_event_tenants, p_event_ids) AS w(tenant_id, event_id),
         LATERAL (SELECT 1 FROM events x
                  WHERE x.tenant_id = w.tenant_id AND x.event_id = w.event_id LIMIT 1) e
    UNION ALL
    SELECT 3::SMALLINT, w.tenant_id, w.key, NULL, NULL, NULL, NULL, NULL
    FROM unnest(p_key_tenants, p_keys) AS w(tenant_id, key),
         LATERAL (SELECT 1 FROM idempotency_keys x
                  WHERE x.tenant_id = w.tenant_id AND x.key = w.key LIMIT 1) k;
END
$$;
