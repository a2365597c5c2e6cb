-- Row-level security. Every table keyed by tenant shows a session only the rows of the
-- tenant named in the setting `tenantry.tenant_id` (none when it is unset), for reading and
-- for writing, its owner included (FORCE). The server does a tenant's work as the role
-- `tenantry_app` (not the tables' owner, no BYPASSRLS), with the tenant set per transaction
-- (by the append function itself for appends) or per checked-out connection (reads), and
-- platform-wide work (projectors, relay, purge, rebuild, key lookups, listings across
-- tenants) as `tenantry_platform` (BYPASSRLS). Both roles are created here when the
-- migrating role may create roles; otherwise an administrator creates them (see README).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantry_app') THEN
        CREATE ROLE tenantry_app NOLOGIN NOBYPASSRLS;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN RAISE NOTICE 'cannot create the role tenantry_app';
    WHEN duplicate_object OR unique_violation THEN NULL; -- another migration made it meanwhile
END $$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantry_platform') THEN
        CREATE ROLE tenantry_platform NOLOGIN BYPASSRLS;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN RAISE NOTICE 'cannot create the role tenantry_platform';
    WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

-- Every base table with a tenant_id column: RLS on and forced, one policy.
DO $$
DECLARE
    t RECORD;
    v_match TEXT;
BEGIN
    FOR t IN
        SELECT c.table_name, c.data_type
        FROM information_schema.columns c
        JOIN information_schema.tables tb ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
        WHERE c.column_name = 'tenant_id' AND c.table_schema = current_schema() AND tb.table_type = 'BASE TABLE'
    LOOP
        v_match := CASE WHEN t.data_type = 'uuid'
            THEN 'tenant_id = NULLIF(current_setting(''tenantry.tenant_id'', true), '''')::uuid'
            ELSE 'tenant_id = current_setting(''tenantry.tenant_id'', true)' END;
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t.table_name);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t.table_name);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (%s) WITH CHECK (%s)',
                       t.table_name, v_match, v_match);
    END LOOP;
END $$;

-- What the two roles may do: the same rights on every table (RLS draws the line).
DO $$
DECLARE
    r TEXT;
BEGIN
    FOREACH r IN ARRAY ARRAY['tenantry_app', 'tenantry_platform'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), r);
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', current_schema(), r);
            EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', current_schema(), r);
            EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I', current_schema(), r);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I',
                           current_schema(), r);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO %I',
                           current_schema(), r);
        END IF;
    END LOOP;
END $$;

-- The append function of 0021, which now names its tenant for the transaction first.
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
    v_existing  TEXT[]   := '{}';
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
        SELECT s.version INTO v_actual FROM streams s
        WHERE s.tenant_id = p_tenant AND s.stream_id = p_streams[i];
        IF v_actual IS NULL THEN
            v_actual := 0;
        ELSIF array_position(v_existing, p_streams[i]) IS NULL THEN
            v_existing := v_existing || p_streams[i];
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

    -- Streams seen above are updated in place; new ones inserted (no speculative insert).
    -- A stream listed only to check its version got no event: it is left as it is.
    FOR i IN 1 .. cardinality(v_names) LOOP
        IF NOT v_names[i] = ANY (p_ev_streams) THEN
            CONTINUE;
        ELSIF array_position(v_existing, v_names[i]) IS NULL THEN
            INSERT INTO streams (tenant_id, stream_id, version) VALUES (p_tenant, v_names[i], v_versions[i]);
        ELSE
            UPDATE streams SET version = v_versions[i]
            WHERE tenant_id = p_tenant AND stream_id = v_names[i];
        END IF;
    END LOOP;

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
