-- Nothing to change on SQLite: the appending transaction leaves an uncharged append's bytes
-- uncounted (see the PostgreSQL migration of the same number).
SELECT 1;
