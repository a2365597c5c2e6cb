-- Every process that caches API keys for authentication hears, on channel tenantry_auth,
-- the tenant whose keys or users changed (revoked, removed, erased, rebuilt, purged), and
-- drops what it cached of that tenant. Sent when the change commits; a key created anew
-- needs no notice (only live keys are cached, and an unknown key is always read).
CREATE FUNCTION tenantry_auth_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenantry_auth', OLD.tenant_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER dir_api_keys_changed AFTER UPDATE OR DELETE ON dir_api_keys
    FOR EACH ROW EXECUTE FUNCTION tenantry_auth_changed();

CREATE TRIGGER dir_users_changed AFTER UPDATE OR DELETE ON dir_users
    FOR EACH ROW EXECUTE FUNCTION tenantry_auth_changed();
