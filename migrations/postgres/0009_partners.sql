-- Partners (resellers) live in the platform's log; their rows are keyed by the platform's
-- tenant id like every other row.
CREATE TABLE dir_partners (
    tenant_id  TEXT   NOT NULL,
    partner_id TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, partner_id)
);

-- A partner_admin key acts for one partner: the tenants created under it.
ALTER TABLE platform_keys ADD COLUMN partner_id TEXT;
