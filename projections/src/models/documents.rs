//! The knowledge base: documents as listed, and their chunks indexed for full-text search
//! (SQLite FTS5; PostgreSQL `tsvector` under a GIN index keyed by tenant first). A chunk's
//! text comes from the body kept beside the log, opened with the tenant's key when the
//! document's event is applied; a rebuild reads the bodies again.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tenantry_domain::document::chunks;
use tenantry_domain::{DocumentId, Event, TenantContext, TenantId};
use tenantry_store::{EventStore, RecordedEvent};

use super::{Page, id_cursor, int, page_size, text};
use crate::db::{ReadDb, Val, exec, insert_many};
use crate::error::ProjectionError;
use crate::runtime::Projector;

/// Persisted projector name.
pub const NAME: &str = "documents";

/// Most words a search query may hold.
pub const MAX_QUERY_WORDS: usize = 32;
/// Most results a search answers.
pub const MAX_RESULTS: u32 = 50;

#[derive(Debug, Clone)]
pub struct Documents {
    /// Where the bodies are kept (beside the log).
    pub store: EventStore,
}

#[async_trait]
impl Projector for Documents {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let Ok(tenant_id) = tenant.parse::<TenantId>() else { return Ok(()) };
        let ctx = TenantContext::system(tenant_id);
        for e in events {
            match &e.event {
                Event::DocumentAdded(d) => {
                    let id = d.document_id.to_string();
                    // A body deleted since (a rebuild after a removal) or shredded indexes
                    // nothing; its removal event, or the purge, follows.
                    let body = self.store.read_blob(&ctx, *d.document_id.as_uuid()).await?;
                    let body = body.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                    let rows: Vec<Vec<Val>> = chunks(&body)
                        .into_iter()
                        .enumerate()
                        .map(|(n, range)| {
                            vec![tenant.into(), id.as_str().into(), (n as i64).into(), body[range].into()]
                        })
                        .collect();
                    let count = rows.len() as i64;
                    exec(
                        conn,
                        "DELETE FROM document_chunks WHERE tenant_id = $1 AND document_id = $2",
                        vec![tenant.into(), id.as_str().into()],
                    )
                    .await?;
                    insert_many(
                        conn,
                        "document_chunks",
                        &["tenant_id", "document_id", "chunk_no", "body"],
                        rows,
                        "",
                    )
                    .await?;
                    exec(
                        conn,
                        "INSERT INTO documents (tenant_id, document_id, title, content_type, metadata, size,
                                                sha256, chunks, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                         ON CONFLICT (tenant_id, document_id) DO NOTHING",
                        vec![
                            tenant.into(),
                            id.as_str().into(),
                            d.title.as_str().into(),
                            d.content_type.as_str().into(),
                            d.metadata.as_str().into(),
                            d.size.into(),
                            d.sha256.as_str().into(),
                            count.into(),
                            e.recorded_at.timestamp_millis().into(),
                        ],
                    )
                    .await?;
                }
                Event::DocumentRemoved(d) => {
                    let id = d.document_id.to_string();
                    for table in ["document_chunks", "documents"] {
                        exec(
                            conn,
                            &format!("DELETE FROM {table} WHERE tenant_id = $1 AND document_id = $2"),
                            vec![tenant.into(), id.as_str().into()],
                        )
                        .await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn clear(&self, conn: &mut AnyConnection, tenant: &str) -> Result<u64, ProjectionError> {
        Ok(exec(conn, "DELETE FROM document_chunks WHERE tenant_id = $1", vec![tenant.into()]).await?
            + exec(conn, "DELETE FROM documents WHERE tenant_id = $1", vec![tenant.into()]).await?)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentRow {
    #[serde(rename = "id")]
    pub document_id: String,
    pub title: String,
    pub content_type: String,
    pub metadata: serde_json::Value,
    /// Bytes of the body, counted toward `storage_bytes`.
    pub size: i64,
    /// SHA-256 of the body, lowercase hex.
    pub sha256: String,
    /// Chunks the body was split into for search.
    pub chunks: i64,
    #[serde(with = "super::time")]
    pub created_at: i64,
}

impl TryFrom<&AnyRow> for DocumentRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            document_id: text(r, "document_id")?,
            title: text(r, "title")?,
            content_type: text(r, "content_type")?,
            metadata: serde_json::from_str(&text(r, "metadata")?).unwrap_or_default(),
            size: int(r, "size")?,
            sha256: text(r, "sha256")?,
            chunks: int(r, "chunks")?,
            created_at: int(r, "created_at")?,
        })
    }
}

/// The tenant's documents by id.
pub async fn documents(
    ctx: &TenantContext,
    db: &ReadDb,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<DocumentRow>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT * FROM documents WHERE tenant_id = $1 AND document_id > $2 ORDER BY document_id LIMIT $3",
    )
    .bind(ctx.tenant_id.to_string())
    .bind(id_cursor(after)?)
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let rows = rows.iter().map(DocumentRow::try_from).collect::<Result<_, _>>()?;
    Ok(Page::from_rows(rows, limit, |d: &DocumentRow| d.document_id.clone()))
}

pub async fn document(
    ctx: &TenantContext,
    db: &ReadDb,
    document: DocumentId,
) -> Result<Option<DocumentRow>, ProjectionError> {
    let row = sqlx::query("SELECT * FROM documents WHERE tenant_id = $1 AND document_id = $2")
        .bind(ctx.tenant_id.to_string())
        .bind(document.to_string())
        .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
        .await?;
    row.as_ref().map(DocumentRow::try_from).transpose()
}

/// The words of a search query, as both backends' indexes split text: runs of letters and
/// digits, lowercased. An empty list matches nothing.
pub fn query_words(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub document_id: String,
    pub title: String,
    /// The chunk's number in its document, from 0.
    pub chunk: i64,
    /// Higher is better; comparable within one answer only.
    pub score: f64,
    /// The best passage of the chunk, matched words between `**`.
    pub snippet: String,
}

/// Chunks of the tenant's documents holding every word of `words`, best first.
pub async fn search(
    ctx: &TenantContext,
    db: &ReadDb,
    words: &[String],
    limit: u32,
) -> Result<Vec<SearchHit>, ProjectionError> {
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let tenant = ctx.tenant_id.to_string();
    let limit = i64::from(limit.clamp(1, MAX_RESULTS));
    let rows = if db.is_postgres() {
        // Ranked and cut first, so a passage is drawn for the rows shown only.
        sqlx::query(
            "SELECT h.document_id, h.chunk_no, d.title, h.score,
                    ts_headline('simple', h.body, h.q,
                                'StartSel=**, StopSel=**, MaxWords=35, MinWords=15, MaxFragments=1') AS snippet
             FROM (SELECT c.document_id, c.chunk_no, c.body, q, ts_rank_cd(c.tsv, q)::float8 AS score
                   FROM document_chunks c, plainto_tsquery('simple', $2) q
                   WHERE c.tenant_id = $1 AND c.tsv @@ q
                   ORDER BY score DESC, c.document_id, c.chunk_no LIMIT $3) h
             JOIN documents d ON d.tenant_id = $1 AND d.document_id = h.document_id
             ORDER BY h.score DESC, h.document_id, h.chunk_no",
        )
        .bind(&tenant)
        .bind(words.join(" "))
        .bind(limit)
        .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
        .await?
    } else {
        // The tenant is a column of the index: the match itself is the tenant's. Every word
        // is quoted, so nothing in a query is read as FTS5 syntax.
        let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
        let expression = format!("tenant_id : \"{tenant}\" AND body : ({})", quoted.join(" AND "));
        sqlx::query(
            "SELECT c.document_id, c.chunk_no, d.title,
                    -bm25(document_chunks_fts, 0.0, 1.0) AS score,
                    snippet(document_chunks_fts, 1, '**', '**', '…', 24) AS snippet
             FROM document_chunks_fts
             JOIN document_chunks c ON c.id = document_chunks_fts.rowid
             JOIN documents d ON d.tenant_id = c.tenant_id AND d.document_id = c.document_id
             WHERE document_chunks_fts MATCH $1 AND c.tenant_id = $2
             ORDER BY bm25(document_chunks_fts, 0.0, 1.0), c.document_id, c.chunk_no LIMIT $3",
        )
        .bind(expression)
        .bind(&tenant)
        .bind(limit)
        .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
        .await?
    };
    rows.iter()
        .map(|r| {
            Ok(SearchHit {
                document_id: text(r, "document_id")?,
                title: text(r, "title")?,
                chunk: int(r, "chunk_no")?,
                score: r.try_get::<f64, _>("score")?,
                snippet: text(r, "snippet")?,
            })
        })
        .collect()
}
