-- Bodies kept beside the log: knowledge-base documents, sealed with the tenant's key like
-- every payload, keyed by tenant. The log records their metadata, size and SHA-256; the body
-- is written (or deleted) in the append's transaction and its bytes count toward the tenant's
-- stored bytes.
CREATE TABLE blobs (
    tenant_id BLOB    NOT NULL,
    blob_id   BLOB    NOT NULL,
    sealed    BLOB    NOT NULL,
    size      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, blob_id)
) WITHOUT ROWID;

-- The knowledge base as listed.
CREATE TABLE documents (
    tenant_id    TEXT   NOT NULL,
    document_id  TEXT   NOT NULL,
    title        TEXT   NOT NULL,
    content_type TEXT   NOT NULL,
    metadata     TEXT   NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT   NOT NULL,
    chunks       BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, document_id)
);

-- Chunks of the documents for retrieval, indexed by FTS5 (external content). The tenant id is
-- a column of the index too, so a search matches its tenant's entries only. `secure-delete`
-- removes a deleted chunk's words from the index at once instead of leaving them until a merge.
CREATE TABLE document_chunks (
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    document_id TEXT    NOT NULL,
    chunk_no    BIGINT  NOT NULL,
    body        TEXT    NOT NULL,
    UNIQUE (tenant_id, document_id, chunk_no)
);
CREATE VIRTUAL TABLE document_chunks_fts USING fts5(
    tenant_id, body, content = 'document_chunks', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO document_chunks_fts (document_chunks_fts, rank) VALUES ('secure-delete', 1);
CREATE TRIGGER document_chunks_ai AFTER INSERT ON document_chunks BEGIN
    INSERT INTO document_chunks_fts (rowid, tenant_id, body) VALUES (new.id, new.tenant_id, new.body);
END;
CREATE TRIGGER document_chunks_ad AFTER DELETE ON document_chunks BEGIN
    INSERT INTO document_chunks_fts (document_chunks_fts, rowid, tenant_id, body)
    VALUES ('delete', old.id, old.tenant_id, old.body);
END;
