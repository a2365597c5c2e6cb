-- The platform's named operators, from `operator.*` events of the platform log.
CREATE TABLE dir_operators (
    tenant_id   TEXT   NOT NULL, -- always the platform's
    operator_id TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    removed     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, operator_id)
);

-- A deleted partner stays in the log; its row says so and listings leave it out.
ALTER TABLE dir_partners ADD COLUMN deleted BIGINT NOT NULL DEFAULT 0;
