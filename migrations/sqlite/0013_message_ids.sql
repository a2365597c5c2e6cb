-- A message is found by its id (the answer to its append, GET of one message).
CREATE INDEX IF NOT EXISTS conv_messages_by_id ON conv_messages (tenant_id, message_id);
