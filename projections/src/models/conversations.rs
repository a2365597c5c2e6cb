//! Conversation threads and their messages. Writes are batched: one multi-row insert for the
//! threads and one for the messages of a page (or of many tenants' pages), one update for the
//! threads touched.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use tenantry_domain::personal::ERASED;
use tenantry_domain::{ConversationId, Event, MessageId, TenantContext};
use tenantry_store::RecordedEvent;

use super::{Page, id_cursor, int, opt_int, opt_text, page_size, text};
use crate::db::{ReadDb, Val, exec, insert_many};
use crate::error::ProjectionError;
use crate::runtime::Projector;

/// A message's `seq` from its version in the conversation's stream: the first event opens
/// the conversation, so its messages count from 1.
fn seq(stream_version: u64) -> i64 {
    i64::try_from(stream_version).unwrap_or(i64::MAX) - 1
}

/// Persisted projector name.
pub const NAME: &str = "conversations";

/// Threads and messages. Titles and message content are kept sealed under the
/// conversation's key (and its author's), then the tenant's (see [`EventStore::seal_value`]):
/// deleting the conversation or erasing its author leaves only ciphertext behind.
#[derive(Debug, Clone)]
pub struct Conversations {
    pub store: tenantry_store::EventStore,
}

impl Conversations {
    async fn sealed(
        &self,
        tenant: &str,
        person: Option<tenantry_domain::UserId>,
        conversation: tenantry_domain::ConversationId,
        text: &str,
    ) -> Result<String, ProjectionError> {
        let tenant =
            tenant.parse().map_err(|_| ProjectionError::Malformed(format!("tenant id {tenant:?}")))?;
        let layers: Vec<uuid::Uuid> =
            person.map(|p| *p.as_uuid()).into_iter().chain([*conversation.as_uuid()]).collect();
        Ok(self.store.seal_value(tenant, &layers, text).await?)
    }
}

#[async_trait]
impl Projector for Conversations {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        self.apply_many(conn, &[(tenant, events)]).await
    }

    async fn apply_many(
        &self,
        conn: &mut AnyConnection,
        pages: &[(&str, &[RecordedEvent])],
    ) -> Result<(), ProjectionError> {
        let mut rows = Rows::default();
        for (tenant, events) in pages {
            for e in *events {
                let at = e.recorded_at.timestamp_millis();
                match &e.event {
                    Event::ConversationOpened(c) => rows.threads.push(vec![
                        (*tenant).into(),
                        c.conversation_id.to_string().into(),
                        c.agent_id.to_string().into(),
                        c.user_id.map(|u| u.to_string()).into(),
                        match &c.title {
                            Some(t) => {
                                Some(self.sealed(tenant, c.user_id, c.conversation_id, t.as_str()).await?)
                            }
                            None => None,
                        }
                        .into(),
                        0i64.into(),
                        at.into(),
                        at.into(),
                    ]),
                    Event::MessageAppended(m) => {
                        let id = m.conversation_id.to_string();
                        rows.messages.push(vec![
                            (*tenant).into(),
                            id.as_str().into(),
                            seq(e.stream_version).into(),
                            m.message_id.to_string().into(),
                            m.role.as_str().into(),
                            self.sealed(tenant, m.author, m.conversation_id, m.content.as_str())
                                .await?
                                .into(),
                            m.model.as_deref().into(),
                            m.usage.map(|u| u.prompt_tokens).into(),
                            m.usage.map(|u| u.completion_tokens).into(),
                            at.into(),
                        ]);
                        let entry = rows.touched.entry(((*tenant).to_owned(), id)).or_insert((0, at));
                        entry.0 += 1;
                        entry.1 = entry.1.max(at);
                    }
                    Event::ConversationRetitled(c) => {
                        // The thread may be among the rows gathered so far.
                        rows.flush(conn).await?;
                        exec(
                            conn,
                            "UPDATE conv_threads SET title = $1 WHERE tenant_id = $2 AND conversation_id = $3",
                            vec![
                                match &c.title {
                                    Some(t) => {
                                        Some(self.sealed(tenant, c.user_id, c.conversation_id, t.as_str()).await?)
                                    }
                                    None => None,
                                }
                                .into(),
                                (*tenant).into(),
                                c.conversation_id.to_string().into(),
                            ],
                        )
                        .await?;
                    }
                    Event::ConversationArchived(c) => {
                        rows.flush(conn).await?;
                        exec(
                            conn,
                            "UPDATE conv_threads SET archived = $1 WHERE tenant_id = $2 AND conversation_id = $3",
                            vec![i64::from(c.archived).into(), (*tenant).into(), c.conversation_id.to_string().into()],
                        )
                        .await?;
                    }
                    Event::ConversationDeleted(c) => {
                        rows.flush(conn).await?;
                        for table in ["conv_messages", "conv_threads"] {
                            exec(
                                conn,
                                &format!("DELETE FROM {table} WHERE tenant_id = $1 AND conversation_id = $2"),
                                vec![(*tenant).into(), c.conversation_id.to_string().into()],
                            )
                            .await?;
                        }
                    }
                    Event::UserErased(u) => {
                        // Rows gathered so far go in first, so the erasure reaches them too.
                        rows.flush(conn).await?;
                        erase_user(conn, tenant, &u.user_id.to_string()).await?;
                    }
                    _ => {}
                }
            }
        }
        rows.flush(conn).await
    }

    async fn clear(&self, conn: &mut AnyConnection, tenant: &str) -> Result<u64, ProjectionError> {
        Ok(exec(conn, "DELETE FROM conv_messages WHERE tenant_id = $1", vec![tenant.into()]).await?
            + exec(conn, "DELETE FROM conv_threads WHERE tenant_id = $1", vec![tenant.into()]).await?)
    }
}

/// Threads bumped in one statement: a bound on its parameters (four a thread).
const THREADS_PER_UPDATE: usize = 500;

/// Rows gathered from pages of one or more tenants, written in a few statements.
#[derive(Default)]
struct Rows {
    threads: Vec<Vec<Val>>,
    messages: Vec<Vec<Val>>,
    /// (tenant, conversation) to (messages added, last message time).
    touched: BTreeMap<(String, String), (i64, i64)>,
}

impl Rows {
    /// Insert the rows gathered so far and bump the touched threads.
    async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), ProjectionError> {
        insert_many(
            conn,
            "conv_threads",
            &[
                "tenant_id",
                "conversation_id",
                "agent_id",
                "user_id",
                "title",
                "message_count",
                "created_at",
                "last_message_at",
            ],
            std::mem::take(&mut self.threads),
            "",
        )
        .await?;
        insert_many(
            conn,
            "conv_messages",
            &[
                "tenant_id",
                "conversation_id",
                "seq",
                "message_id",
                "role",
                "content",
                "model",
                "prompt_tokens",
                "completion_tokens",
                "created_at",
            ],
            std::mem::take(&mut self.messages),
            "",
        )
        .await?;
        let touched: Vec<_> = std::mem::take(&mut self.touched).into_iter().collect();
        for chunk in touched.chunks(THREADS_PER_UPDATE) {
            let (mut added, mut latest, mut which) = (String::new(), String::new(), Vec::new());
            let mut vals = Vec::with_capacity(chunk.len() * 4);
            for ((tenant, conversation), (count, last)) in chunk {
                let i = vals.len();
                let this = format!("(tenant_id = ${} AND conversation_id = ${})", i + 1, i + 2);
                added.push_str(&format!(" WHEN {this} THEN ${}", i + 3));
                latest.push_str(&format!(
                    " WHEN {this} THEN CASE WHEN last_message_at > ${0} THEN last_message_at ELSE ${0} END",
                    i + 4
                ));
                which.push(this);
                vals.extend([
                    tenant.as_str().into(),
                    conversation.as_str().into(),
                    (*count).into(),
                    (*last).into(),
                ]);
            }
            exec(
                conn,
                &format!(
                    "UPDATE conv_threads SET message_count = message_count + CASE{added} END,
                            last_message_at = CASE{latest} END
                     WHERE {}",
                    which.join(" OR ")
                ),
                vals,
            )
            .await?;
        }
        Ok(())
    }
}

/// A person was erased: the titles of their conversations and what they wrote there read as
/// `[erased]`, as a rebuild would show them.
async fn erase_user(conn: &mut AnyConnection, tenant: &str, user: &str) -> Result<(), ProjectionError> {
    exec(
        conn,
        "UPDATE conv_threads SET title = $1 WHERE tenant_id = $2 AND user_id = $3 AND title IS NOT NULL",
        vec![ERASED.into(), tenant.into(), user.into()],
    )
    .await?;
    exec(
        conn,
        "UPDATE conv_messages SET content = $1
         WHERE tenant_id = $2 AND role = 'user' AND conversation_id IN
               (SELECT conversation_id FROM conv_threads WHERE tenant_id = $2 AND user_id = $3)",
        vec![ERASED.into(), tenant.into(), user.into()],
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadRow {
    #[serde(rename = "id")]
    pub conversation_id: String,
    pub agent_id: String,
    pub user_id: Option<String>,
    pub title: Option<String>,
    pub message_count: i64,
    /// Put away: closed to new messages until taken back.
    pub archived: bool,
    #[serde(with = "super::time")]
    pub created_at: i64,
    #[serde(with = "super::time")]
    pub last_message_at: i64,
}

impl TryFrom<&AnyRow> for ThreadRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            conversation_id: text(r, "conversation_id")?,
            agent_id: text(r, "agent_id")?,
            user_id: opt_text(r, "user_id")?,
            title: opt_text(r, "title")?,
            message_count: int(r, "message_count")?,
            archived: int(r, "archived")? != 0,
            created_at: int(r, "created_at")?,
            last_message_at: int(r, "last_message_at")?,
        })
    }
}

/// Which threads to list.
#[derive(Debug, Clone, Default)]
pub struct ThreadFilter {
    pub agent_id: Option<String>,
    pub user_id: Option<String>,
}

/// Threads newest first. The cursor is opaque to callers: `<created_at>.<conversation_id>`.
pub async fn threads(
    ctx: &TenantContext,
    db: &ReadDb,
    filter: &ThreadFilter,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page<ThreadRow>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let (before_at, before_id) = match cursor {
        None => (i64::MAX, String::new()),
        Some(c) => {
            let (at, id) = c.split_once('.').ok_or(ProjectionError::InvalidCursor)?;
            (at.parse().map_err(|_| ProjectionError::InvalidCursor)?, id_cursor(Some(id))?)
        }
    };
    let rows = sqlx::query(
        "SELECT * FROM conv_threads
         WHERE tenant_id = $1 AND ($2 = '' OR agent_id = $2) AND ($3 = '' OR user_id = $3)
           AND (created_at < $4 OR (created_at = $4 AND conversation_id < $5))
         ORDER BY created_at DESC, conversation_id DESC LIMIT $6",
    )
    .bind(tenant.to_string())
    .bind(filter.agent_id.clone().unwrap_or_default())
    .bind(filter.user_id.clone().unwrap_or_default())
    .bind(before_at)
    .bind(if cursor.is_none() { "~".to_owned() } else { before_id })
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let mut items: Vec<ThreadRow> = rows.iter().map(ThreadRow::try_from).collect::<Result<_, _>>()?;
    for t in &mut items {
        t.title = db.open_optional(&ctx.tenant_id.to_string(), t.title.take()).await?;
    }
    Ok(Page::from_rows(items, limit, |t| format!("{}.{}", t.created_at, t.conversation_id)))
}

pub async fn thread(
    ctx: &TenantContext,
    db: &ReadDb,
    conversation: ConversationId,
) -> Result<Option<ThreadRow>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let row = sqlx::query("SELECT * FROM conv_threads WHERE tenant_id = $1 AND conversation_id = $2")
        .bind(tenant.to_string())
        .bind(conversation.to_string())
        .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
        .await?;
    let Some(mut row) = row.as_ref().map(ThreadRow::try_from).transpose()? else { return Ok(None) };
    row.title = db.open_optional(&tenant.to_string(), row.title.take()).await?;
    Ok(Some(row))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageRow {
    /// 1 for the first message of a conversation, then one more per message.
    pub seq: i64,
    #[serde(rename = "id")]
    pub message_id: String,
    pub role: String,
    pub content: String,
    pub model: Option<String>,
    /// The tokens the message was billed for, when it carried usage.
    pub usage: Option<MessageUsage>,
    #[serde(with = "super::time")]
    pub created_at: i64,
}

/// A message's token usage, in the shape it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MessageUsage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// Messages of a conversation in order; the cursor is the last `seq` seen.
pub async fn messages(
    ctx: &TenantContext,
    db: &ReadDb,
    conversation: ConversationId,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page<MessageRow>, ProjectionError> {
    Ok(thread_messages(ctx, db, conversation, cursor, limit)
        .await?
        .map(|(_, page)| page)
        .unwrap_or(Page { items: Vec::new(), next_cursor: None }))
}

/// One message of a thread, with the thread's user: `None` when there is no such message.
pub async fn message(
    ctx: &TenantContext,
    db: &ReadDb,
    conversation: ConversationId,
    message: MessageId,
) -> Result<Option<(Option<String>, MessageRow)>, ProjectionError> {
    let row = sqlx::query(
        "SELECT t.user_id AS owner, m.* FROM conv_messages m
         JOIN conv_threads t ON t.tenant_id = m.tenant_id AND t.conversation_id = m.conversation_id
         WHERE m.tenant_id = $1 AND m.conversation_id = $2 AND m.message_id = $3",
    )
    .bind(ctx.tenant_id.to_string())
    .bind(conversation.to_string())
    .bind(message.to_string())
    .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let Some((owner, mut message)) = row
        .as_ref()
        .map(|r| Ok::<_, ProjectionError>((opt_text(r, "owner")?, MessageRow::try_from(r)?)))
        .transpose()?
    else {
        return Ok(None);
    };
    message.content = db.open_value(&ctx.tenant_id.to_string(), &message.content).await?;
    Ok(Some((owner, message)))
}

impl MessageRow {
    /// The row this read model makes of a message just appended at `stream_version` of its
    /// conversation and recorded at `recorded_at` (Unix milliseconds): what a read of it will
    /// show, known without waiting for the projector.
    pub fn appended(
        m: &tenantry_domain::command::AppendMessage,
        stream_version: u64,
        recorded_at: i64,
    ) -> Self {
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Self {
            seq: seq(stream_version),
            message_id: m.message_id.to_string(),
            role: m.role.as_str().to_owned(),
            content: m.content.clone(),
            model: m.model.clone(),
            usage: m.usage.map(|u| MessageUsage {
                prompt_tokens: tokens(u.prompt_tokens),
                completion_tokens: tokens(u.completion_tokens),
            }),
            created_at: recorded_at,
        }
    }
}

impl TryFrom<&AnyRow> for MessageRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            seq: int(r, "seq")?,
            message_id: text(r, "message_id")?,
            role: text(r, "role")?,
            content: text(r, "content")?,
            model: opt_text(r, "model")?,
            usage: match (opt_int(r, "prompt_tokens")?, opt_int(r, "completion_tokens")?) {
                (Some(prompt_tokens), Some(completion_tokens)) => {
                    Some(MessageUsage { prompt_tokens, completion_tokens })
                }
                _ => None,
            },
            created_at: int(r, "created_at")?,
        })
    }
}

/// A page of a thread's messages with the thread's user, read in one query: `None` when
/// there is no such thread.
pub async fn thread_messages(
    ctx: &TenantContext,
    db: &ReadDb,
    conversation: ConversationId,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Option<(Option<String>, Page<MessageRow>)>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let after: i64 = match cursor {
        None => 0,
        Some(c) => c.parse().map_err(|_| ProjectionError::InvalidCursor)?,
    };
    // One row per message, or one row of NULL messages for a thread without any (yet).
    let rows = sqlx::query(
        // The page is limited on its own, so it stays a range scan of the messages' key.
        "SELECT t.user_id AS owner, m.seq, m.message_id, m.role, m.content, m.model, m.prompt_tokens,
                m.completion_tokens, m.created_at
         FROM conv_threads t
         LEFT JOIN (SELECT * FROM conv_messages WHERE tenant_id = $1 AND conversation_id = $2 AND seq > $3
                    ORDER BY seq LIMIT $4) m ON TRUE
         WHERE t.tenant_id = $1 AND t.conversation_id = $2
         ORDER BY m.seq",
    )
    .bind(tenant.to_string())
    .bind(conversation.to_string())
    .bind(after)
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let owner = opt_text(first, "owner")?;
    let mut items: Vec<MessageRow> = rows
        .iter()
        .filter(|r| opt_int(r, "seq").is_ok_and(|s| s.is_some()))
        .map(MessageRow::try_from)
        .collect::<Result<_, ProjectionError>>()?;
    let key = tenant.to_string();
    for m in &mut items {
        m.content = db.open_value(&key, &m.content).await?;
    }
    Ok(Some((owner, Page::from_rows(items, limit, |m| m.seq.to_string()))))
}

/// Conversations of the tenant with no activity since `before` (Unix ms), oldest first, at
/// most `limit`: what a retention of the tenant deletes.
pub async fn inactive_since(
    ctx: &TenantContext,
    db: &ReadDb,
    before: i64,
    limit: u32,
) -> Result<Vec<ConversationId>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT conversation_id FROM conv_threads WHERE tenant_id = $1 AND last_message_at < $2
         ORDER BY last_message_at, conversation_id LIMIT $3",
    )
    .bind(ctx.tenant_id.to_string())
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    rows.iter()
        .map(|r| {
            text(r, "conversation_id")?
                .parse()
                .map_err(|_| ProjectionError::Malformed("conversation id in conv_threads".into()))
        })
        .collect()
}
