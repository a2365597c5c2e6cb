-- How far the broker relay has published each tenant's log (acknowledged by JetStream).
CREATE TABLE relay_positions (
    tenant_id TEXT   NOT NULL,
    position  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id)
);
