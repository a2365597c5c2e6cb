//! What tenants do, by day, agent, user and model: conversations opened, messages by role,
//! tokens and their cost. One row per (tenant, day, agent, user, model) holds the counts;
//! reports sum them for a period, grouped as asked, per tenant, for a partner's tenants or
//! for the whole platform. Rebuildable like every read model.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;
use sqlx::AnyConnection;
use tenantry_domain::event::MessageRole;
use tenantry_domain::{Event, PartnerId, TenantContext};
use tenantry_store::RecordedEvent;

use super::billing::{PriceTable, cost_of, money};
use super::{int, text};
use crate::db::{ReadDb, Val, exec, insert_many};
use crate::error::ProjectionError;
use crate::runtime::Projector;

/// Persisted projector name.
pub const NAME: &str = "analytics";

/// The counters of a row, in column order.
const COUNTERS: [&str; 8] = [
    "conversations",
    "messages_user",
    "messages_assistant",
    "messages_tool",
    "messages_system",
    "prompt_tokens",
    "completion_tokens",
    "cost_nanos",
];

#[derive(Debug, Clone, Default)]
pub struct Analytics {
    pub prices: PriceTable,
    conversations: Arc<Mutex<Mappings>>,
}

impl Analytics {
    pub fn new(prices: PriceTable) -> Self {
        Self { prices, conversations: Default::default() }
    }

    /// The agent and user of a conversation: from memory, else `analytics_conversations`
    /// (remembered then); `None` when the conversation never opened.
    async fn mapping(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        conversation: &str,
    ) -> Result<Option<(String, String)>, ProjectionError> {
        if let Some(found) = self.remembered(|m| m.get(tenant, conversation)) {
            return Ok(Some(found));
        }
        let row = sqlx::query(
            "SELECT agent_id, user_id FROM analytics_conversations WHERE tenant_id = $1 AND conversation_id = $2",
        )
        .bind(tenant)
        .bind(conversation)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let found = (text(&r, "agent_id")?, text(&r, "user_id")?);
        self.remembered(|m| m.put(tenant, conversation, found.clone()));
        Ok(Some(found))
    }

    /// Runs `f` on the remembered mappings; a poisoned lock is taken as it is (a mapping
    /// holds no invariant a panic could break).
    fn remembered<T>(&self, f: impl FnOnce(&mut Mappings) -> T) -> T {
        f(&mut self.conversations.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// One tenant's events counted into `deltas` (by tenant and line); the messages whose
    /// usage comes in a later page go to `left` as rows of `analytics_billed`.
    async fn count<'a>(
        &self,
        conn: &mut AnyConnection,
        tenant: &'a str,
        events: &[RecordedEvent],
        deltas: &mut BTreeMap<(&'a str, Key), [i64; 8]>,
        left: &mut Vec<Vec<Val>>,
    ) -> Result<(), ProjectionError> {
        // The last message with usage seen in these events: (its position, its id).
        let mut previous: Option<(u64, String)> = None;
        // Where the usage of these events' messages goes, by request id, until their usage
        // takes it (the same append, as a rule): only what is left goes to `analytics_billed`.
        let mut billed: HashMap<String, Key> = HashMap::new();
        for e in events {
            match &e.event {
                Event::ConversationOpened(c) => {
                    let (agent, user) =
                        (c.agent_id.to_string(), c.user_id.map(|u| u.to_string()).unwrap_or_default());
                    let conversation = c.conversation_id.to_string();
                    exec(
                        conn,
                        "INSERT INTO analytics_conversations (tenant_id, conversation_id, agent_id, user_id)
                         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, conversation_id) DO NOTHING",
                        vec![
                            tenant.into(),
                            conversation.as_str().into(),
                            agent.as_str().into(),
                            user.as_str().into(),
                        ],
                    )
                    .await?;
                    self.remembered(|m| m.put(tenant, &conversation, (agent.clone(), user.clone())));
                    deltas.entry((tenant, (day(e.recorded_at), agent, user, String::new()))).or_default()
                        [0] += 1;
                }
                Event::MessageAppended(m) => {
                    let (agent, user) =
                        self.mapping(conn, tenant, &m.conversation_id.to_string()).await?.unwrap_or_default();
                    let model = m.model.clone().unwrap_or_default();
                    let line_key = (day(e.recorded_at), agent, user, model.clone());
                    let line = deltas.entry((tenant, line_key.clone())).or_default();
                    line[match m.role {
                        MessageRole::User => 1,
                        MessageRole::Assistant => 2,
                        MessageRole::Tool => 3,
                        MessageRole::System => 4,
                    }] += 1;
                    // Its tokens come with its usage record (same append), which names the
                    // message as its request id: remember where they go.
                    if m.usage.is_some() {
                        previous = Some((e.position, m.message_id.to_string()));
                        billed.entry(m.message_id.to_string()).or_insert(line_key);
                    }
                }
                Event::UsageRecorded(u) => {
                    let (cost, _) = cost_of(&self.prices, u);
                    // A message's usage goes where its message went; other usage has no agent
                    // and no user.
                    let mut key = (day(u.occurred_at), String::new(), String::new(), u.model.clone());
                    if u.kind == "message"
                        && let Some(id) = &u.request_id
                    {
                        // Recorded history may bill a message under another request id: the
                        // message just before it in the same append is the one.
                        let found = match take_billed(conn, tenant, &mut billed, id).await? {
                            Some(found) => Some(found),
                            None => match &previous {
                                Some((position, message)) if *position + 1 == e.position => {
                                    take_billed(conn, tenant, &mut billed, message).await?
                                }
                                _ => None,
                            },
                        };
                        if let Some(found) = found {
                            key = found;
                        }
                    }
                    let line = deltas.entry((tenant, key)).or_default();
                    line[5] += i64::try_from(u.usage.prompt_tokens).unwrap_or(i64::MAX);
                    line[6] += i64::try_from(u.usage.completion_tokens).unwrap_or(i64::MAX);
                    line[7] += cost;
                }
                Event::ConversationDeleted(c) => {
                    // The counts stay (they happened); the mapping goes with the conversation.
                    let conversation = c.conversation_id.to_string();
                    self.remembered(|m| m.forget(tenant, &conversation));
                    exec(
                        conn,
                        "DELETE FROM analytics_conversations WHERE tenant_id = $1 AND conversation_id = $2",
                        vec![tenant.into(), conversation.into()],
                    )
                    .await?;
                }
                _ => {}
            }
        }
        // Messages whose usage comes in a later page.
        left.extend(billed.into_iter().map(|(request, (day, agent, user, model))| {
            vec![tenant.into(), request.into(), day.into(), agent.into(), user.into(), model.into()]
        }));
        Ok(())
    }
}

/// Conversations remembered at most: a message's line then needs no read. A full map is
/// emptied and filled again from the table.
const REMEMBERED: usize = 20_000;

/// The agent and user of the conversations the projector has met, by tenant. A
/// conversation's are fixed when it opens, so what is remembered is what the log says, even
/// from a transaction that was rolled back (the same events are applied again). A
/// conversation's deletion and a tenant's clearing forget them.
#[derive(Debug, Default)]
struct Mappings {
    by_tenant: HashMap<String, HashMap<String, (String, String)>>,
    len: usize,
}

impl Mappings {
    fn get(&self, tenant: &str, conversation: &str) -> Option<(String, String)> {
        self.by_tenant.get(tenant)?.get(conversation).cloned()
    }

    fn put(&mut self, tenant: &str, conversation: &str, mapping: (String, String)) {
        if let Some(known) = self.by_tenant.get_mut(tenant).and_then(|c| c.get_mut(conversation)) {
            *known = mapping;
            return;
        }
        if self.len >= REMEMBERED {
            self.by_tenant.clear();
            self.len = 0;
        }
        self.by_tenant.entry(tenant.to_owned()).or_default().insert(conversation.to_owned(), mapping);
        self.len += 1;
    }

    fn forget(&mut self, tenant: &str, conversation: &str) {
        if let Some(of_tenant) = self.by_tenant.get_mut(tenant)
            && of_tenant.remove(conversation).is_some()
        {
            self.len -= 1;
        }
    }

    fn forget_tenant(&mut self, tenant: &str) {
        if let Some(of_tenant) = self.by_tenant.remove(tenant) {
            self.len -= of_tenant.len();
        }
    }
}

/// Where a count goes: (day, agent, user, model); `''` for none.
type Key = (String, String, String, String);

fn day(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

#[async_trait]
impl Projector for Analytics {
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

    /// The counts of every tenant's pages in one multi-row upsert, and the messages whose
    /// usage is still to come in one insert.
    async fn apply_many(
        &self,
        conn: &mut AnyConnection,
        pages: &[(&str, &[RecordedEvent])],
    ) -> Result<(), ProjectionError> {
        let mut deltas: BTreeMap<(&str, Key), [i64; 8]> = BTreeMap::new();
        let mut left: Vec<Vec<Val>> = Vec::new();
        for (tenant, events) in pages {
            self.count(conn, tenant, events, &mut deltas, &mut left).await?;
        }
        insert_many(
            conn,
            "analytics_billed",
            &["tenant_id", "request_id", "day", "agent_id", "user_id", "model"],
            left,
            "ON CONFLICT (tenant_id, request_id) DO NOTHING",
        )
        .await?;
        let rows = deltas
            .into_iter()
            .map(|((tenant, (day, agent, user, model)), counts)| {
                let mut row: Vec<Val> =
                    vec![tenant.into(), day.into(), agent.into(), user.into(), model.into()];
                row.extend(counts.iter().map(|c| Val::from(*c)));
                row
            })
            .collect();
        let columns: Vec<&str> =
            ["tenant_id", "day", "agent_id", "user_id", "model"].into_iter().chain(COUNTERS).collect();
        let updates: Vec<String> =
            COUNTERS.iter().map(|c| format!("{c} = analytics_daily.{c} + excluded.{c}")).collect();
        insert_many(
            conn,
            "analytics_daily",
            &columns,
            rows,
            &format!(
                "ON CONFLICT (tenant_id, day, agent_id, user_id, model) DO UPDATE SET {}",
                updates.join(", ")
            ),
        )
        .await
    }

    async fn clear(&self, conn: &mut AnyConnection, tenant: &str) -> Result<u64, ProjectionError> {
        self.remembered(|m| m.forget_tenant(tenant));
        Ok(exec(conn, "DELETE FROM analytics_daily WHERE tenant_id = $1", vec![tenant.into()]).await?
            + exec(conn, "DELETE FROM analytics_conversations WHERE tenant_id = $1", vec![tenant.into()])
                .await?)
    }
}

/// Where the usage billed under `request` goes (its message's day, agent, user and model),
/// taken out of `billed` (the messages of the same page) or else `analytics_billed`: `None`
/// when no message left it there.
async fn take_billed(
    conn: &mut AnyConnection,
    tenant: &str,
    billed: &mut HashMap<String, Key>,
    request: &str,
) -> Result<Option<Key>, ProjectionError> {
    if let Some(key) = billed.remove(request) {
        return Ok(Some(key));
    }
    let row = sqlx::query(
        "SELECT day, agent_id, user_id, model FROM analytics_billed WHERE tenant_id = $1 AND request_id = $2",
    )
    .bind(tenant)
    .bind(request)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    exec(
        conn,
        "DELETE FROM analytics_billed WHERE tenant_id = $1 AND request_id = $2",
        vec![tenant.into(), request.into()],
    )
    .await?;
    Ok(Some((text(&r, "day")?, text(&r, "agent_id")?, text(&r, "user_id")?, text(&r, "model")?)))
}

/// How a report groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Agent,
    User,
    Model,
    Tenant,
}

impl GroupBy {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "day" => Self::Day,
            "agent" => Self::Agent,
            "user" => Self::User,
            "model" => Self::Model,
            "tenant" => Self::Tenant,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Agent => "agent_id",
            Self::User => "user_id",
            Self::Model => "model",
            Self::Tenant => "tenant_id",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Messages {
    pub user: i64,
    pub assistant: i64,
    pub tool: i64,
    pub system: i64,
}

/// The figures of one group, or of the whole report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub conversations: i64,
    pub messages: Messages,
    /// Users who opened a conversation or wrote in one.
    pub active_users: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// In the price table's currency, as a decimal string.
    pub cost: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The day, agent id, user id, model or tenant id; `null` for what has none (usage
    /// recorded outside a conversation has no agent and no user).
    pub key: Option<String>,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub group_by: &'static str,
    pub currency: String,
    pub groups: Vec<Group>,
    pub totals: Figures,
}

/// Which tenants a report covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Tenant(&'a TenantContext),
    Partner(PartnerId),
    Platform,
}

/// The report for `scope` over the days `from..=to` (`YYYY-MM-DD`), grouped by `group_by`.
pub async fn report(
    db: &ReadDb,
    scope: Scope<'_>,
    from: &str,
    to: &str,
    group_by: GroupBy,
    currency: &str,
) -> Result<Report, ProjectionError> {
    let (filter, bound) = match scope {
        Scope::Tenant(ctx) => ("tenant_id = $3", Some(ctx.tenant_id.to_string())),
        Scope::Partner(p) => {
            ("tenant_id IN (SELECT tenant_id FROM dir_tenants WHERE partner_id = $3)", Some(p.to_string()))
        }
        Scope::Platform => ("$3 = ''", Some(String::new())),
    };
    let sql = format!(
        "SELECT tenant_id, day, agent_id, user_id, model, {} FROM analytics_daily
         WHERE day >= $1 AND day <= $2 AND {filter}",
        COUNTERS.join(", ")
    );
    let query = sqlx::query(&sql).bind(from).bind(to).bind(bound.unwrap_or_default());
    // One tenant's report under its row-level security; roll-ups across tenants as the platform.
    let rows = match scope {
        Scope::Tenant(ctx) => query.fetch_all(&mut *db.scoped(ctx.tenant_id).await?).await?,
        Scope::Partner(_) | Scope::Platform => query.fetch_all(db.platform_readers()).await?,
    };
    // Per group: the counters and the users seen.
    let mut groups: BTreeMap<String, ([i64; 8], std::collections::BTreeSet<String>)> = BTreeMap::new();
    let mut total = ([0i64; 8], std::collections::BTreeSet::new());
    for r in &rows {
        let key = text(r, group_by.column())?;
        let user = text(r, "user_id")?;
        let entry = groups.entry(key).or_default();
        for (i, column) in COUNTERS.iter().enumerate() {
            let v = int(r, column)?;
            entry.0[i] = entry.0[i].saturating_add(v);
            total.0[i] = total.0[i].saturating_add(v);
        }
        let active = int(r, "conversations")? + int(r, "messages_user")? > 0;
        if active && !user.is_empty() {
            let tenant = text(r, "tenant_id")?;
            entry.1.insert(format!("{tenant}/{user}"));
            total.1.insert(format!("{tenant}/{user}"));
        }
    }
    let figures = |(c, users): &([i64; 8], std::collections::BTreeSet<String>)| Figures {
        conversations: c[0],
        messages: Messages { user: c[1], assistant: c[2], tool: c[3], system: c[4] },
        active_users: users.len() as i64,
        prompt_tokens: c[5],
        completion_tokens: c[6],
        cost: money(c[7]),
    };
    Ok(Report {
        from: from.to_owned(),
        to: to.to_owned(),
        group_by: match group_by {
            GroupBy::Day => "day",
            GroupBy::Agent => "agent",
            GroupBy::User => "user",
            GroupBy::Model => "model",
            GroupBy::Tenant => "tenant",
        },
        currency: currency.to_owned(),
        groups: groups
            .iter()
            .map(|(k, v)| Group { key: (!k.is_empty()).then(|| k.clone()), figures: figures(v) })
            .collect(),
        totals: figures(&total),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use chrono::Utc;
    use tenantry_domain::event::{ConversationOpened, MessageAppended, Metadata, TokenUsage, UsageRecorded};
    use tenantry_domain::{AgentId, ConversationId, EventId, MessageId, Personal, TenantContext, TenantId};
    use tenantry_store::testing::Harness;

    use super::*;

    fn recorded(tenant: TenantId, position: u64, event: Event) -> RecordedEvent {
        RecordedEvent {
            tenant_id: tenant,
            position,
            stream_id: "conversation".into(),
            stream_version: position,
            event_id: EventId::new(),
            event_type: "test".into(),
            schema_version: 1,
            recorded_at: Utc::now(),
            event,
            metadata: Metadata::from_context(&TenantContext::system(tenant)),
            payload_bytes: 0,
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    /// A conversation opened, a message with usage, and its usage record naming the message:
    /// the append the API makes for a message with usage, after the opening.
    fn events(tenant: TenantId, agent: AgentId) -> Vec<RecordedEvent> {
        let conversation = ConversationId::new();
        let message = MessageId::new();
        let usage = TokenUsage { prompt_tokens: 12, completion_tokens: 30 };
        vec![
            recorded(
                tenant,
                1,
                Event::ConversationOpened(ConversationOpened {
                    conversation_id: conversation,
                    agent_id: agent,
                    user_id: None,
                    title: None,
                }),
            ),
            recorded(
                tenant,
                2,
                Event::MessageAppended(MessageAppended {
                    conversation_id: conversation,
                    message_id: message,
                    role: MessageRole::Assistant,
                    content: Personal::Text("hello".into()),
                    model: Some("model-small".into()),
                    usage: Some(usage),
                    author: None,
                }),
            ),
            recorded(
                tenant,
                3,
                Event::UsageRecorded(UsageRecorded {
                    model: "model-small".into(),
                    kind: "message".into(),
                    usage,
                    request_id: Some(message.to_string()),
                    occurred_at: Utc::now(),
                    cost: None,
                }),
            ),
        ]
    }

    /// The message's usage is counted under its conversation's agent and its model, whether
    /// the usage record comes in the message's page or in the next one, and nothing is left
    /// waiting in `analytics_billed` either way.
    async fn usage_goes_to_its_message_in_any_page(url: &str) {
        let db = ReadDb::connect(url, 1).await.unwrap();
        let agent = AgentId::new();
        let (together, split) = (TenantId::new(), TenantId::new());
        let apply = async |tenant: TenantId, page: &[RecordedEvent]| {
            // The write turn, on SQLite, is held until the transaction is committed.
            let (_turn, mut tx) = db.begin_write().await.unwrap();
            Analytics::default().apply(&mut tx, &tenant.to_string(), page).await.unwrap();
            tx.commit().await.unwrap();
        };
        apply(together, &events(together, agent)).await;
        let all = events(split, agent);
        apply(split, &all[..2]).await;
        apply(split, &all[2..]).await;
        for tenant in [together, split] {
            let rows = sqlx::query(
                "SELECT agent_id, model, messages_assistant, prompt_tokens, completion_tokens
                 FROM analytics_daily WHERE tenant_id = $1 AND model <> ''",
            )
            .bind(tenant.to_string())
            .fetch_all(db.pool())
            .await
            .unwrap();
            assert_eq!(rows.len(), 1, "one line for the message and its usage");
            let row = &rows[0];
            assert_eq!(text(row, "agent_id").unwrap(), agent.to_string());
            assert_eq!(text(row, "model").unwrap(), "model-small");
            assert_eq!(int(row, "messages_assistant").unwrap(), 1);
            assert_eq!(int(row, "prompt_tokens").unwrap(), 12);
            assert_eq!(int(row, "completion_tokens").unwrap(), 30);
            let waiting = sqlx::query("SELECT request_id FROM analytics_billed WHERE tenant_id = $1")
                .bind(tenant.to_string())
                .fetch_all(db.pool())
                .await
                .unwrap();
            assert!(waiting.is_empty(), "every message's usage was taken");
        }
    }

    /// The remembered mappings stay within their bound, and forgetting a conversation or a
    /// tenant keeps the count true, so the bound holds after any mix of the three.
    #[test]
    fn remembered_mappings_stay_bounded_and_counted() {
        let mut m = Mappings::default();
        let pair = || ("agent".to_owned(), "user".to_owned());
        for i in 0..REMEMBERED {
            m.put(if i % 2 == 0 { "a" } else { "b" }, &i.to_string(), pair());
        }
        m.put("a", "0", pair());
        assert_eq!(m.len, REMEMBERED, "putting a known conversation again adds nothing");
        m.forget("a", "0");
        m.forget("a", "0");
        m.forget("c", "1");
        assert_eq!(m.len, REMEMBERED - 1);
        assert_eq!(m.get("a", "0"), None);
        assert_eq!(m.get("b", "1"), Some(pair()));
        m.forget_tenant("b");
        assert_eq!(m.len, REMEMBERED / 2 - 1);
        assert_eq!(m.get("b", "1"), None);
        for i in 0..REMEMBERED {
            m.put("c", &i.to_string(), pair());
        }
        assert!(m.len <= REMEMBERED);
        assert_eq!(m.len, m.by_tenant.values().map(HashMap::len).sum::<usize>());
    }

    #[tokio::test]
    async fn usage_goes_to_its_message_in_any_page_on_sqlite() {
        let h = Harness::sqlite().await;
        usage_goes_to_its_message_in_any_page(&h.url).await;
    }

    #[tokio::test]
    async fn usage_goes_to_its_message_in_any_page_on_postgres() {
        let Some(h) = Harness::postgres().await else { return };
        usage_goes_to_its_message_in_any_page(&h.url).await;
    }
}
