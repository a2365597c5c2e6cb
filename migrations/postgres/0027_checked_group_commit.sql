-- A group commit decided from what the process knows of its tenants' heads and streams,
-- without reading them under the head locks first, is written by one statement in autocommit
-- that checks every assumption as it writes: each head is moved only from the position it was
-- known at, each stream only from its version (a new one inserted, never overwritten), and
-- event ids and idempotency keys are unique. When a head or stream was not where it was
-- known to be, the statement calls this function, which refuses it whole (serialization
-- failure: the caller decides the commit again under the locks).
CREATE FUNCTION tenantry_stale(p_written BIGINT, p_expected BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tenantry: % of % heads and streams were where the group commit assumed them',
        p_written, p_expected
        USING ERRCODE = 'serialization_failure';
END
$$;
