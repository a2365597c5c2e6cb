-- A stream's version is its newest event's, read from the events' (tenant, stream, version)
-- index, instead of a `streams` row written beside every append: an append writes its events
-- and its head and nothing else. The unique index refuses two events at one version, so a
-- version taken twice still fails its append; what a version was decided on is checked
-- against the events themselves (see the group commit's statement in the store).

-- The append function of 0024, reading versions from the events and writing no stream row.
CREATE OR REPLACE FUNCTION tenantry_append(
    p_tenant      UUID,
    p_streams     TEXT[],
    p_expected    BIGINT[],
    p_ev_streams  TEXT[],
    p_event_ids   UUID[],
    p_types       TEXT[],
    p_schema      SMALLINT[],
    p_payloads    BYTEA[],
    p_metadata    BYTEA[],
    p_recorded_at BIGINT,
    p_idem_key    TEXT,
    p_idem_hash   BYTEA
) RETURNS TABLE (status TEXT, first_position BIGINT, last_position BIGINT, conflict_stream TEXT, actual BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    v_pos       BIGINT;
    v_hash      BYTEA;
    v_first     BIGINT;
    v_actual    BIGINT;
    v_idx       INT;
    v_names     TEXT[]   := '{}';
    v_versions  BIGINT[] := '{}';
    v_positions BIGINT[] := '{}';
    v_svers     BIGINT[] := '{}';
    v_prevs     BYTEA[]  := '{}';
    v_hashes    BYTEA[]  := '{}';
    v_stream    BYTEA;
    v_type      BYTEA;
    n           INT := cardinality(p_event_ids);
    v_quota     TEXT := current_setting('tenantry.quota', true);
    v_added     BIGINT := 0;
    v_stored    BIGINT;
    v_day       BIGINT;
    v_calls     BIGINT;
BEGIN
    -- Row-level security: this transaction sees and writes only this tenant's rows.
    PERFORM set_config('tenantry.tenant_id', p_tenant::text, true);
    -- A row lock, not an update: the head gets one new version per append, at the end.
    SELECT h.position, h.last_hash, h.stored_bytes, h.day, h.day_calls
    INTO v_pos, v_hash, v_stored, v_day, v_calls FROM tenant_heads h
    WHERE h.tenant_id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO tenant_heads (tenant_id, position, last_hash)
        VALUES (p_tenant, 0, decode(repeat('00', 32), 'hex'))
        ON CONFLICT (tenant_id) DO NOTHING;
        SELECT h.position, h.last_hash, h.stored_bytes, h.day, h.day_calls
        INTO v_pos, v_hash, v_stored, v_day, v_calls FROM tenant_heads h
        WHERE h.tenant_id = p_tenant FOR UPDATE;
    END IF;

    FOR i IN 1 .. cardinality(p_streams) LOOP
        v_actual := NULL;
        SELECT e.stream_version INTO v_actual FROM events e
        WHERE e.tenant_id = p_tenant AND e.stream_id = p_streams[i]
        ORDER BY e.stream_version DESC LIMIT 1;
        IF v_actual IS NULL THEN
            v_actual := 0;
        END IF;
        IF p_expected[i] <> -1 AND p_expected[i] <> v_actual THEN
            RETURN QUERY SELECT 'conflict'::TEXT, 0::BIGINT, 0::BIGINT, p_streams[i], v_actual;
            RETURN;
        END IF;
        IF array_position(v_names, p_streams[i]) IS NULL THEN
            v_names := v_names || p_streams[i];
            v_versions := v_versions || v_actual;
        END IF;
    END LOOP;

    v_first := v_pos + 1;
    FOR i IN 1 .. n LOOP
        v_pos := v_pos + 1;
        v_idx := array_position(v_names, p_ev_streams[i]);
        v_versions[v_idx] := v_versions[v_idx] + 1;
        v_stream := convert_to(p_ev_streams[i], 'UTF8');
        v_type := convert_to(p_types[i], 'UTF8');
        v_prevs := v_prevs || v_hash;
        v_hash := sha256(
            convert_to('tenantry/chain/v1', 'UTF8') || v_hash || uuid_send(p_tenant) || int8send(v_pos)
            || int8send(octet_length(v_stream)::BIGINT) || v_stream || int8send(v_versions[v_idx])
            || uuid_send(p_event_ids[i])
            || int8send(octet_length(v_type)::BIGINT) || v_type || int2send(p_schema[i])
            || int8send(p_recorded_at)
            || int8send(octet_length(p_payloads[i])::BIGINT) || p_payloads[i]
            || int8send(octet_length(p_metadata[i])::BIGINT) || p_metadata[i]);
        -- Payloads are nonce (24) + ciphertext + tag (16): plaintext is 40 bytes less.
        v_added := v_added + octet_length(p_payloads[i]) - 40;
        v_positions := v_positions || v_pos;
        v_svers := v_svers || v_versions[v_idx];
        v_hashes := v_hashes || v_hash;
    END LOOP;

    INSERT INTO events (tenant_id, position, stream_id, stream_version, event_id, event_type,
                        schema_version, recorded_at, payload, metadata, prev_hash, hash)
    SELECT p_tenant, e.position, e.stream_id, e.stream_version, e.event_id, e.event_type,
           e.schema_version, p_recorded_at, e.payload, e.metadata, e.prev_hash, e.hash
    FROM unnest(v_positions, p_ev_streams, v_svers, p_event_ids, p_types, p_schema, p_payloads,
                p_metadata, v_prevs, v_hashes)
         AS e(position, stream_id, stream_version, event_id, event_type, schema_version, payload,
              metadata, prev_hash, hash);

    -- Bodies kept beside the log (knowledge-base documents), written or deleted by the caller
    -- in this transaction before the call: their bytes count like the events' (negative when
    -- one was deleted).
    v_added := v_added + COALESCE(NULLIF(current_setting('tenantry.blob_bytes', true), '')::BIGINT, 0);

    -- An uncharged append (the audit record of a refused request) stores its bytes without
    -- counting them to the tenant, and is no call: a refusal never spends its target's limits.
    IF v_quota = 'uncharged' THEN
        v_added := 0;
        v_quota := NULL;
    END IF;
    v_stored := v_stored + v_added;
    IF v_quota IS NOT NULL AND v_quota <> '' THEN
        IF split_part(v_quota, ',', 4) = '1' THEN
            IF v_day = split_part(v_quota, ',', 3)::BIGINT THEN
                v_calls := v_calls + 1;
            ELSE
                v_day := split_part(v_quota, ',', 3)::BIGINT;
                v_calls := 1;
            END IF;
            IF v_calls > split_part(v_quota, ',', 2)::BIGINT THEN
                RAISE EXCEPTION 'tenantry: quota api_calls_per_day %', split_part(v_quota, ',', 2)::BIGINT;
            END IF;
        END IF;
        IF v_added > 0 AND v_stored > split_part(v_quota, ',', 1)::BIGINT THEN
            RAISE EXCEPTION 'tenantry: quota storage_bytes %', split_part(v_quota, ',', 1)::BIGINT;
        END IF;
    END IF;

    UPDATE tenant_heads
    SET position = v_pos, last_hash = v_hash, stored_bytes = v_stored, day = v_day, day_calls = v_calls
    WHERE tenant_id = p_tenant;

    IF p_idem_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (tenant_id, key, request_hash, first_position, last_position)
        VALUES (p_tenant, p_idem_key, p_idem_hash, v_first, v_pos);
    END IF;

    RETURN QUERY SELECT 'ok'::TEXT, v_first, v_pos, NULL::TEXT, NULL::BIGINT;
END
$$;

-- The batch's lock and read of 0026, with each stream's version read from its events.
CREATE OR REPLACE FUNCTION tenantry_lock_batch(
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
         LATERAL (SELECT x.stream_version AS version FROM events x
                  WHERE x.tenant_id = w.tenant_id AND x.stream_id = w.stream_id
                  ORDER BY x.stream_version DESC LIMIT 1) s
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

DROP TABLE streams;
