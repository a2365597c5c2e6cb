-- Group commit: many appends, of any tenants, in one call, one transaction and one commit.
--
-- Each request keeps its own outcome: a version conflict, a duplicate event id, a limit or an
-- idempotency key stored before refuses that request alone, decided before anything of it is
-- written (no savepoint per request), and the others are written. What one request sees is
-- what the requests before it in the batch left: two appends to one stream in one batch are
-- checked and chained in order.
--
-- Statements are what an append costs (each one about as much as all the arithmetic of a
-- request), so a batch runs three whatever its size: one locks the heads of its tenants, all
-- of them, in tenant order (two batches of two processes never wait on each other in a
-- cycle); one reads the streams, event ids and idempotency keys the batch names; one writes
-- every event, stream, head and key of the batch (data-modifying CTEs) and answers. Between
-- them each request is decided in memory. A tenant's first append makes its head first.
--
-- A batch holds several tenants, so it runs as the platform role (BYPASSRLS); every row it
-- writes is keyed by its own request's tenant, as in `tenantry_append`.
--
-- Requests are given in order; request i's expectations are p_streams[p_exp_end[i-1]+1 ..
-- p_exp_end[i]] (p_exp_req names their request) and its events p_ev_streams[p_ev_end[i-1]+1
-- .. p_ev_end[i]].
-- p_quotas[i]: '' (no limit), 'uncharged', or 'max_bytes,max_calls,day,counts_as_call'.
-- Statuses: ok, conflict (detail: the stream, actual: its version), duplicate_event,
-- duplicate_key, quota (detail: the limit, actual: its maximum), shredded (a purged tenant).
CREATE FUNCTION tenantry_append_many(
    p_tenants     UUID[],
    p_recorded_at BIGINT[],
    p_quotas      TEXT[],
    p_idem_keys   TEXT[],
    p_idem_hashes BYTEA[],
    p_exp_end     INT[],
    p_exp_req     INT[],
    p_streams     TEXT[],
    p_expected    BIGINT[],
    p_ev_end      INT[],
    p_ev_streams  TEXT[],
    p_event_ids   UUID[],
    p_types       TEXT[],
    p_schema      SMALLINT[],
    p_payloads    BYTEA[],
    p_metadata    BYTEA[]
) RETURNS TABLE (request INT, status TEXT, first_position BIGINT, last_position BIGINT,
                 detail TEXT, actual BIGINT)
-- Generic plans: a custom plan would be made again on every call (the arguments are arrays,
-- whose custom plans never look dearer than a generic one), which cost more than the batch.
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    n_req     INT := cardinality(p_tenants);
    r         RECORD;
    -- Each tenant's head as the batch leaves it.
    t_ids     UUID[]   := '{}';
    t_pos     BIGINT[] := '{}';
    t_hash    BYTEA[]  := '{}';
    t_stored  BIGINT[] := '{}';
    t_day     BIGINT[] := '{}';
    t_calls   BIGINT[] := '{}';
    t_dirty   BOOLEAN[] := '{}';
    t_gone    UUID[]   := '{}';
    -- Each stream the batch names ('tenant/stream'), with its version as the batch leaves it.
    s_keys    TEXT[]   := '{}';
    s_tenant  UUID[]   := '{}';
    s_name    TEXT[]   := '{}';
    s_ver     BIGINT[] := '{}';
    s_dirty   BOOLEAN[] := '{}';
    -- Event ids and idempotency keys taken, before or earlier in the batch ('tenant/…').
    e_taken   TEXT[];
    k_taken   TEXT[];
    -- What is written: events (their index in the arguments), keys (their request).
    a_ev      INT[]    := '{}';
    a_ev_req  INT[]    := '{}';
    a_pos     BIGINT[] := '{}';
    a_sver    BIGINT[] := '{}';
    a_prev    BYTEA[]  := '{}';
    a_hash    BYTEA[]  := '{}';
    a_req     INT[]    := '{}';
    a_first   BIGINT[] := '{}';
    a_last    BIGINT[] := '{}';
    -- Each request's outcome.
    o_status  TEXT[]   := '{}';
    o_first   BIGINT[] := '{}';
    o_last    BIGINT[] := '{}';
    o_detail  TEXT[]   := '{}';
    o_actual  BIGINT[] := '{}';
    -- One request's tentative writes.
    l_sx      INT[];
    l_ver     BIGINT[];
    l_pos     BIGINT[];
    l_sver    BIGINT[];
    l_prev    BYTEA[];
    l_hash    BYTEA[];
    tix       INT;
    sx        INT;
    lx        INT;
    e0        INT := 0;
    v0        INT := 0;
    v_pos     BIGINT;
    v_hash    BYTEA;
    v_added   BIGINT;
    v_stored  BIGINT;
    v_day     BIGINT;
    v_calls   BIGINT;
    v_quota   TEXT;
    v_status  TEXT;
    v_detail  TEXT;
    v_actual  BIGINT;
    v_stream  BYTEA;
    v_type    BYTEA;
    v_tenant  TEXT;
BEGIN
    SELECT array_agg(h.tenant_id), array_agg(h.position), array_agg(h.last_hash),
           array_agg(h.stored_bytes), array_agg(h.day), array_agg(h.day_calls)
    INTO t_ids, t_pos, t_hash, t_stored, t_day, t_calls
    FROM (SELECT * FROM tenant_heads WHERE tenant_id = ANY (p_tenants) ORDER BY tenant_id FOR UPDATE) h;
    IF t_ids IS NULL OR NOT (p_tenants <@ t_ids) THEN
        -- A tenant's first append makes its head; a purged tenant's may not be made again
        -- (the trigger of 0006 refuses it), which refuses that tenant's requests alone. Then
        -- every head again, in order.
        FOR r IN SELECT DISTINCT t.id FROM unnest(p_tenants) AS t(id)
                 WHERE t.id <> ALL (coalesce(t_ids, '{}')) ORDER BY t.id LOOP
            BEGIN
                INSERT INTO tenant_heads (tenant_id, position, last_hash)
                VALUES (r.id, 0, decode(repeat('00', 32), 'hex'))
                ON CONFLICT (tenant_id) DO NOTHING;
            EXCEPTION WHEN raise_exception THEN
                t_gone := t_gone || r.id;
            END;
        END LOOP;
        SELECT array_agg(h.tenant_id), array_agg(h.position), array_agg(h.last_hash),
               array_agg(h.stored_bytes), array_agg(h.day), array_agg(h.day_calls)
        INTO t_ids, t_pos, t_hash, t_stored, t_day, t_calls
        FROM (SELECT * FROM tenant_heads WHERE tenant_id = ANY (p_tenants) ORDER BY tenant_id FOR UPDATE) h;
    END IF;
    t_ids := coalesce(t_ids, '{}');
    t_dirty := array_fill(false, ARRAY[cardinality(t_ids)]);

    -- What is stored already, read once for the whole batch under the locks (a statement
    -- after the lock's, so it sees every commit before the lock was granted).
    SELECT coalesce(array_agg(s.tenant_id::text || '/' || s.stream_id), '{}'),
           coalesce(array_agg(s.tenant_id), '{}'), coalesce(array_agg(s.stream_id), '{}'),
           coalesce(array_agg(s.version), '{}'),
           ARRAY(SELECT e.tenant_id::text || '/' || e.event_id::text FROM events e
                 WHERE e.tenant_id = ANY (p_tenants) AND e.event_id = ANY (p_event_ids)),
           ARRAY(SELECT k.tenant_id::text || '/' || k.key FROM idempotency_keys k
                 WHERE k.tenant_id = ANY (p_tenants) AND k.key = ANY (p_idem_keys))
    INTO s_keys, s_tenant, s_name, s_ver, e_taken, k_taken
    FROM (SELECT DISTINCT p_tenants[x.req] AS tenant_id, x.stream_id
          FROM unnest(p_exp_req, p_streams) AS x(req, stream_id)) w
    JOIN streams s ON s.tenant_id = w.tenant_id AND s.stream_id = w.stream_id;
    s_dirty := array_fill(false, ARRAY[cardinality(s_keys)]);

    FOR i IN 1 .. n_req LOOP
        v_status := 'ok';
        v_detail := NULL;
        v_actual := NULL;
        v_tenant := p_tenants[i]::text || '/';
        tix := array_position(t_ids, p_tenants[i]);
        IF tix IS NULL OR p_tenants[i] = ANY (t_gone) THEN
            v_status := 'shredded';
        END IF;

        -- Expected versions, against what the batch has written so far.
        l_sx := '{}';
        l_ver := '{}';
        IF v_status = 'ok' THEN
            FOR j IN e0 + 1 .. p_exp_end[i] LOOP
                sx := array_position(s_keys, v_tenant || p_streams[j]);
                IF sx IS NULL THEN
                    s_keys := s_keys || (v_tenant || p_streams[j]);
                    s_tenant := s_tenant || p_tenants[i];
                    s_name := s_name || p_streams[j];
                    s_ver := s_ver || 0::BIGINT;
                    s_dirty := s_dirty || false;
                    sx := cardinality(s_keys);
                END IF;
                IF p_expected[j] <> -1 AND p_expected[j] <> s_ver[sx] THEN
                    v_status := 'conflict';
                    v_detail := p_streams[j];
                    v_actual := s_ver[sx];
                    EXIT;
                END IF;
                IF array_position(l_sx, sx) IS NULL THEN
                    l_sx := l_sx || sx;
                    l_ver := l_ver || s_ver[sx];
                END IF;
            END LOOP;
        END IF;

        -- Event ids stored already (a retry), then positions, versions and the chain.
        IF v_status = 'ok' THEN
            FOR k IN v0 + 1 .. p_ev_end[i] LOOP
                IF (v_tenant || p_event_ids[k]::text) = ANY (e_taken) THEN
                    v_status := 'duplicate_event';
                    EXIT;
                END IF;
            END LOOP;
        END IF;
        IF v_status = 'ok' THEN
            v_pos := t_pos[tix];
            v_hash := t_hash[tix];
            v_added := 0;
            l_pos := '{}';
            l_sver := '{}';
            l_prev := '{}';
            l_hash := '{}';
            FOR k IN v0 + 1 .. p_ev_end[i] LOOP
                lx := array_position(l_sx, array_position(s_keys, v_tenant || p_ev_streams[k]));
                l_ver[lx] := l_ver[lx] + 1;
                v_pos := v_pos + 1;
                v_stream := convert_to(p_ev_streams[k], 'UTF8');
                v_type := convert_to(p_types[k], 'UTF8');
                l_prev := l_prev || v_hash;
                v_hash := sha256(
                    convert_to('tenantry/chain/v1', 'UTF8') || v_hash || uuid_send(p_tenants[i]) || int8send(v_pos)
                    || int8send(octet_length(v_stream)::BIGINT) || v_stream || int8send(l_ver[lx])
                    || uuid_send(p_event_ids[k])
                    || int8send(octet_length(v_type)::BIGINT) || v_type || int2send(p_schema[k])
                    || int8send(p_recorded_at[i])
                    || int8send(octet_length(p_payloads[k])::BIGINT) || p_payloads[k]
                    || int8send(octet_length(p_metadata[k])::BIGINT) || p_metadata[k]);
                -- Payloads are nonce (24) + ciphertext + tag (16): plaintext is 40 bytes less.
                v_added := v_added + octet_length(p_payloads[k]) - 40;
                l_pos := l_pos || v_pos;
                l_sver := l_sver || l_ver[lx];
                l_hash := l_hash || v_hash;
            END LOOP;

            -- Limits, as `tenantry_append` decides them.
            v_quota := p_quotas[i];
            v_stored := t_stored[tix];
            v_day := t_day[tix];
            v_calls := t_calls[tix];
            IF v_quota = 'uncharged' THEN
                v_added := 0;
                v_quota := '';
            END IF;
            v_stored := v_stored + v_added;
            IF v_quota <> '' THEN
                IF split_part(v_quota, ',', 4) = '1' THEN
                    IF v_day = split_part(v_quota, ',', 3)::BIGINT THEN
                        v_calls := v_calls + 1;
                    ELSE
                        v_day := split_part(v_quota, ',', 3)::BIGINT;
                        v_calls := 1;
                    END IF;
                    IF v_calls > split_part(v_quota, ',', 2)::BIGINT THEN
                        v_status := 'quota';
                        v_detail := 'api_calls_per_day';
                        v_actual := split_part(v_quota, ',', 2)::BIGINT;
                    END IF;
                END IF;
                IF v_status = 'ok' AND v_added > 0 AND v_stored > split_part(v_quota, ',', 1)::BIGINT THEN
                    v_status := 'quota';
                    v_detail := 'storage_bytes';
                    v_actual := split_part(v_quota, ',', 1)::BIGINT;
                END IF;
            END IF;
            IF v_status = 'ok' AND p_idem_keys[i] IS NOT NULL AND (v_tenant || p_idem_keys[i]) = ANY (k_taken) THEN
                v_status := 'duplicate_key';
            END IF;
        END IF;

        IF v_status = 'ok' THEN
            o_first := o_first || (t_pos[tix] + 1);
            o_last := o_last || v_pos;
            t_pos[tix] := v_pos;
            t_hash[tix] := v_hash;
            t_stored[tix] := v_stored;
            t_day[tix] := v_day;
            t_calls[tix] := v_calls;
            t_dirty[tix] := true;
            FOR x IN 1 .. cardinality(l_sx) LOOP
                IF s_ver[l_sx[x]] <> l_ver[x] THEN
                    s_ver[l_sx[x]] := l_ver[x];
                    s_dirty[l_sx[x]] := true;
                END IF;
            END LOOP;
            FOR k IN v0 + 1 .. p_ev_end[i] LOOP
                a_ev := a_ev || k;
                a_ev_req := a_ev_req || i;
                e_taken := e_taken || (v_tenant || p_event_ids[k]::text);
            END LOOP;
            a_pos := a_pos || l_pos;
            a_sver := a_sver || l_sver;
            a_prev := a_prev || l_prev;
            a_hash := a_hash || l_hash;
            IF p_idem_keys[i] IS NOT NULL THEN
                a_req := a_req || i;
                a_first := a_first || (v_pos - (p_ev_end[i] - v0) + 1);
                a_last := a_last || v_pos;
                k_taken := k_taken || (v_tenant || p_idem_keys[i]);
            END IF;
        ELSE
            o_first := o_first || 0::BIGINT;
            o_last := o_last || 0::BIGINT;
        END IF;
        o_status := o_status || v_status;
        o_detail := o_detail || v_detail;
        o_actual := o_actual || v_actual;
        e0 := p_exp_end[i];
        v0 := p_ev_end[i];
    END LOOP;

    -- Every write of the batch, and the outcomes, in one statement.
    RETURN QUERY
    WITH written_events AS (
        INSERT INTO events (tenant_id, position, stream_id, stream_version, event_id, event_type,
                            schema_version, recorded_at, payload, metadata, prev_hash, hash)
        SELECT p_tenants[a.req], a.position, p_ev_streams[a.ev], a.stream_version, p_event_ids[a.ev],
               p_types[a.ev], p_schema[a.ev], p_recorded_at[a.req], p_payloads[a.ev], p_metadata[a.ev],
               a.prev_hash, a.hash
        FROM unnest(a_ev, a_ev_req, a_pos, a_sver, a_prev, a_hash)
             AS a(ev, req, position, stream_version, prev_hash, hash)
    ), written_streams AS (
        -- A stream listed only to check its version got no event: it is left as it is.
        INSERT INTO streams (tenant_id, stream_id, version)
        SELECT x.tenant_id, x.stream_id, x.version
        FROM unnest(s_tenant, s_name, s_ver, s_dirty) AS x(tenant_id, stream_id, version, dirty)
        WHERE x.dirty
        ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = excluded.version
    ), written_heads AS (
        UPDATE tenant_heads h
        SET position = x.position, last_hash = x.last_hash, stored_bytes = x.stored_bytes, day = x.day,
            day_calls = x.day_calls
        FROM unnest(t_ids, t_pos, t_hash, t_stored, t_day, t_calls, t_dirty)
             AS x(tenant_id, position, last_hash, stored_bytes, day, day_calls, dirty)
        WHERE x.dirty AND h.tenant_id = x.tenant_id
    ), written_keys AS (
        INSERT INTO idempotency_keys (tenant_id, key, request_hash, first_position, last_position)
        SELECT p_tenants[k.req], p_idem_keys[k.req], p_idem_hashes[k.req], k.first_position, k.last_position
        FROM unnest(a_req, a_first, a_last) AS k(req, first_position, last_position)
    )
    SELECT o.i::INT, o.status, o.first_position, o.last_position, o.detail, o.actual
    FROM unnest(o_status, o_first, o_last, o_detail, o_actual)
         WITH ORDINALITY AS o(status, first_position, last_position, detail, actual, i);
END
$$;
