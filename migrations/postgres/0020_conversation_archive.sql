-- A conversation put away: listed with the flag, closed to new messages until taken back.
ALTER TABLE conv_threads ADD COLUMN archived BIGINT NOT NULL DEFAULT 0;
