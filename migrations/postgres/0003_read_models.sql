-- Read models: projections of the tenant logs, rebuildable at any time. Ids are text so one
-- schema serves both backends through one SQL dialect; every table has tenant_id first in
-- its primary key.

-- Where each projector stands in each tenant's log; written in the same transaction as the
-- rows it covers, so every event takes effect exactly once.
CREATE TABLE projection_checkpoints (
    tenant_id TEXT   NOT NULL,
    projector TEXT   NOT NULL,
    position  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, projector)
);

-- A tenant a projector cannot go past, and why (undecodable event, destroyed key, hole).
CREATE TABLE projection_stalls (
    tenant_id TEXT   NOT NULL,
    projector TEXT   NOT NULL,
    position  BIGINT NOT NULL,
    reason    TEXT   NOT NULL,
    since     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, projector)
);

-- A rebuild of every tenant in progress: where to resume after an interruption.
CREATE TABLE projection_rebuilds (
    projector      TEXT NOT NULL,
    through_tenant TEXT NOT NULL,
    PRIMARY KEY (projector)
);

CREATE TABLE dir_tenants (
    tenant_id  TEXT   NOT NULL,
    slug       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    plan       TEXT   NOT NULL,
    status     TEXT   NOT NULL,
    partner_id TEXT,
    settings   TEXT   NOT NULL, -- JSON
    limits     TEXT   NOT NULL, -- JSON of the overrides
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id)
);

CREATE TABLE dir_agents (
    tenant_id     TEXT   NOT NULL,
    agent_id      TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    model         TEXT   NOT NULL,
    system_prompt TEXT   NOT NULL,
    tool_ids      TEXT   NOT NULL, -- JSON array
    archived      BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id)
);

CREATE TABLE dir_tools (
    tenant_id   TEXT   NOT NULL,
    tool_id     TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    description TEXT   NOT NULL,
    endpoint    TEXT   NOT NULL,
    parameters  TEXT   NOT NULL,
    enabled     BIGINT NOT NULL,
    removed     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, tool_id)
);

CREATE TABLE dir_users (
    tenant_id  TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    email      TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    removed    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE dir_api_keys (
    tenant_id   TEXT   NOT NULL,
    key_id      TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    secret_hash TEXT   NOT NULL, -- keyed hash, hex; never returned by queries
    revoked     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key_id)
);

CREATE TABLE conv_threads (
    tenant_id       TEXT   NOT NULL,
    conversation_id TEXT   NOT NULL,
    agent_id        TEXT   NOT NULL,
    user_id         TEXT,
    title           TEXT,
    message_count   BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_message_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE INDEX conv_threads_by_agent ON conv_threads (tenant_id, agent_id, created_at, conversation_id);
CREATE INDEX conv_threads_by_user ON conv_threads (tenant_id, user_id, created_at, conversation_id);
CREATE INDEX conv_threads_by_time ON conv_threads (tenant_id, created_at, conversation_id);

CREATE TABLE conv_messages (
    tenant_id         TEXT   NOT NULL,
    conversation_id   TEXT   NOT NULL,
    seq               BIGINT NOT NULL, -- the conversation stream's version: 1, 2, 3 …
    message_id        TEXT   NOT NULL,
    role              TEXT   NOT NULL,
    content           TEXT   NOT NULL,
    model             TEXT,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, seq)
);

-- Commands per day, tokens per month, stored bytes: what quotas compare with limits.
CREATE TABLE quota_counters (
    tenant_id TEXT   NOT NULL,
    period    TEXT   NOT NULL, -- 'day:2026-11-23', 'month:2026-11', 'all'
    api_calls BIGINT NOT NULL,
    tokens    BIGINT NOT NULL,
    bytes     BIGINT NOT NULL,
    -- On the 'all' row: the request id of the last event counted, so a command whose
    -- events span two pages counts once.
    last_request TEXT,
    PRIMARY KEY (tenant_id, period)
);

-- Tokens and cost per model per day; months are sums of days.
CREATE TABLE usage_daily (
    tenant_id         TEXT   NOT NULL,
    day               TEXT   NOT NULL, -- YYYY-MM-DD (UTC)
    model             TEXT   NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_nanos        BIGINT NOT NULL, -- exact: 1e-9 of the price currency
    unpriced          BIGINT NOT NULL, -- 1 when the model had no price and the default applied
    requests          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, model)
);

CREATE TABLE audit_entries (
    tenant_id  TEXT   NOT NULL,
    position   BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    target     TEXT,
    outcome    TEXT   NOT NULL,
    reason     TEXT,
    request_id TEXT   NOT NULL,
    source_ip  TEXT,
    PRIMARY KEY (tenant_id, position)
);
CREATE INDEX audit_entries_by_time ON audit_entries (tenant_id, at);
