-- One data key per person (user) of a tenant, wrapped by the master key. Their personal
-- values (email, conversation titles, what they wrote) are sealed with it inside events.
-- NULL once destroyed: erasing a person makes those values unreadable for good, and no key
-- is ever minted again for them.
CREATE TABLE subject_keys (
    tenant_id    UUID        NOT NULL,
    subject_id   UUID        NOT NULL,
    wrapped_key  BYTEA,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    destroyed_at TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, subject_id)
);
