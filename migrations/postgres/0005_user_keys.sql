-- A `user` key acts as one user of its tenant (apikey.issued v2).
ALTER TABLE dir_api_keys ADD COLUMN user_id TEXT;
