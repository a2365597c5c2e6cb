-- What tenants do, by day, agent, user and model ('' for none): the analytics read model.
CREATE TABLE analytics_daily (
    tenant_id          TEXT   NOT NULL,
    day                TEXT   NOT NULL,
    agent_id           TEXT   NOT NULL,
    user_id            TEXT   NOT NULL,
    model              TEXT   NOT NULL,
    conversations      BIGINT NOT NULL,
    messages_user      BIGINT NOT NULL,
    messages_assistant BIGINT NOT NULL,
    messages_tool      BIGINT NOT NULL,
    messages_system    BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cost_nanos         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, agent_id, user_id, model)
);
CREATE INDEX analytics_daily_by_day ON analytics_daily (day);

-- Which agent and user each conversation belongs to, so its messages are counted there.
CREATE TABLE analytics_conversations (
    tenant_id       TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);

-- Where a message's usage record (same append, just after it) is counted: its message's day,
-- agent, user and model, by the record's request id (the message id). Gone once counted.
CREATE TABLE analytics_billed (
    tenant_id  TEXT NOT NULL,
    request_id TEXT NOT NULL,
    day        TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    model      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);
