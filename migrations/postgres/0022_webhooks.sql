-- Webhook endpoints as listed (never the signing secret, which stays in the log).
CREATE TABLE webhooks (
    tenant_id         TEXT   NOT NULL,
    webhook_id        TEXT   NOT NULL,
    url               TEXT   NOT NULL,
    event_types       TEXT   NOT NULL,
    enabled           BIGINT NOT NULL,
    removed           BIGINT NOT NULL,
    disabled_reason   TEXT,
    -- The position of `webhook.created`: deliveries start after it.
    created_position  BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    secret_rotated_at BIGINT,
    PRIMARY KEY (tenant_id, webhook_id)
);

-- The dispatcher's own state, not a read model (a rebuild keeps it): per endpoint, the last
-- position delivered (or passed over), and the retry of the next one when it failed.
CREATE TABLE webhook_cursors (
    tenant_id       TEXT   NOT NULL,
    webhook_id      TEXT   NOT NULL,
    position        BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    failing_since   BIGINT,
    next_attempt_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, webhook_id)
);

-- The delivery log: one row per endpoint and event, its last attempt's outcome.
CREATE TABLE webhook_deliveries (
    tenant_id        TEXT   NOT NULL,
    webhook_id       TEXT   NOT NULL,
    position         BIGINT NOT NULL,
    message_id       TEXT   NOT NULL,
    event_type       TEXT   NOT NULL,
    status           TEXT   NOT NULL,
    attempts         BIGINT NOT NULL,
    response_status  BIGINT,
    latency_ms       BIGINT,
    error            TEXT,
    first_attempt_at BIGINT NOT NULL,
    last_attempt_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, webhook_id, position)
);
