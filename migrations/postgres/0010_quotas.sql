-- Limits decided with the append, under the tenant's head lock: stored bytes and API calls
-- per UTC day, counted on the head row. The append passes its limits in the transaction-local
-- setting `tenantry.quota` ("max_bytes,max_calls,day,counts_as_call"); without it, bytes are
-- counted and nothing is checked (platform work, recorded history).
ALTER TABLE tenant_heads
    ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN day          BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN day_calls    BIGINT NOT NULL DEFAULT 0;

-- Payloads are nonce (24) + ciphertext + tag (16): plaintext is 40 bytes less.
UPDATE tenant_heads h SET stored_bytes = COALESCE(
    (SELECT sum(octet_length(e.payload) - 40) FROM events e WHERE e.tenant_id = h.tenant_id), 0);

CREATE FUNCTION tenantry_head_quota() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_quota TEXT := current_setting('tenantry.quota', true);
    v_added BIGINT;
    v_max_bytes BIGINT;
    v_max_calls BIGINT;
    v_day BIGINT;
BEGIN
    IF NEW.position = OLD.position THEN
        RETURN NEW;
    END IF;
    SELECT COALESCE(sum(octet_length(e.payload) - 40), 0) INTO v_added FROM events e
    WHERE e.tenant_id = NEW.tenant_id AND e.position > OLD.position AND e.position <= NEW.position;
    NEW.stored_bytes := OLD.stored_bytes + v_added;
    IF v_quota IS NULL OR v_quota = '' THEN
        RETURN NEW;
    END IF;
    v_max_bytes := split_part(v_quota, ',', 1)::BIGINT;
    v_max_calls := split_part(v_quota, ',', 2)::BIGINT;
    v_day := split_part(v_quota, ',', 3)::BIGINT;
    IF split_part(v_quota, ',', 4) = '1' THEN
        IF OLD.day = v_day THEN
            NEW.day_calls := OLD.day_calls + 1;
        ELSE
            NEW.day := v_day;
            NEW.day_calls := 1;
        END IF;
        IF NEW.day_calls > v_max_calls THEN
            RAISE EXCEPTION 'tenantry: quota api_calls_per_day %', v_max_calls;
        END IF;
    END IF;
    IF v_added > 0 AND NEW.stored_bytes > v_max_bytes THEN
        RAISE EXCEPTION 'tenantry: quota storage_bytes %', v_max_bytes;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER tenant_heads_quota BEFORE UPDATE ON tenant_heads
    FOR EACH ROW EXECUTE FUNCTION tenantry_head_quota();
