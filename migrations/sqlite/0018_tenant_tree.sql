-- Tenants under tenants: the parent, and every ancestor (root first, space-separated) so
-- a subtree is one query.
ALTER TABLE dir_tenants ADD COLUMN parent_id TEXT;
ALTER TABLE dir_tenants ADD COLUMN ancestors TEXT NOT NULL DEFAULT '';
CREATE INDEX dir_tenants_by_parent ON dir_tenants (parent_id);
