//! Verifiable exports: a tenant's whole log as JSON Lines, and their offline verification.
//!
//! An export is a header line, one line per event (decoded to JSON) and a trailer line. The
//! store's own hash chain covers ciphertext, which an export does not carry, so each line
//! carries a second chain over its own bytes: every line ends with
//! `,"export_hash":"<64 hex>"}`, the SHA-256 of the previous line's hash and of the line's
//! bytes before that suffix. Any edit, deletion, insertion, reordering or truncation breaks
//! it, and [`verify`] names the first position where it does, with no database and no key.
//!
//! The event chain starts from a seed over the tenant and the store's head (position and
//! chain hash), not over the export time, so two exports of the same log differ only in the
//! header line. Each event line also carries the store's chain hash for that position, so an
//! auditor holding the database (or a later export) can tie the file to the live log.

use std::io::{BufRead, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenantry_domain::{Event, Metadata, TenantContext, TenantId};

use crate::error::StoreError;
use crate::model::RecordedEvent;
use crate::store::EventStore;

/// The format string in every header; readers refuse others.
pub const FORMAT: &str = "tenantry-export/1";

const HASH_KEY: &str = ",\"export_hash\":\"";

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub tenant_id: TenantId,
    /// Informational: the only field that differs between two exports of the same log.
    pub exported_at: String,
    pub head_position: u64,
    /// The store's chain hash at `head_position` (hex).
    pub head_hash: String,
    /// A person's own export: only the events naming them (their profile, keys, the
    /// conversations they opened and everything in them, what they did), at increasing
    /// positions with the others left out. Absent from a whole tenant's export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<uuid::Uuid>,
}

/// One event line, as written.
#[derive(Debug, Serialize)]
struct EventLineOut<'a> {
    position: u64,
    stream: &'a str,
    version: u64,
    event_id: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    schema_version: u16,
    recorded_at: String,
    data: Public<'a>,
    metadata: &'a Metadata,
    chain_hash: String,
}

/// An event as a tenant's own systems are shown it (the event feed, webhooks): the fields of
/// an export line but the hashes, the data without secrets.
pub fn public_event(e: &RecordedEvent) -> serde_json::Value {
    serde_json::json!({
        "position": e.position,
        "stream": e.stream_id,
        "version": e.stream_version,
        "event_id": e.event_id.to_string(),
        "type": e.event_type,
        "schema_version": e.schema_version,
        "recorded_at": timestamp(e.recorded_at),
        "data": Public(&e.event),
        "metadata": e.metadata,
    })
}

/// An event as an export shows it: everything but secrets (an API key's hash stays in the
/// log, out of every file handed out).
#[derive(Debug)]
struct Public<'a>(&'a Event);

impl Serialize for Public<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Event::ApiKeyIssued(k) => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("ApiKeyIssued", 6)?;
                st.serialize_field("key_id", &k.key_id)?;
                st.serialize_field("name", &k.name)?;
                st.serialize_field("role", &k.role)?;
                st.serialize_field("user_id", &k.user_id)?;
                st.serialize_field("scopes", &k.scopes)?;
                st.serialize_field("expires_at", &k.expires_at.map(|t| t.timestamp_millis()))?;
                st.end()
            }
            Event::OperatorCreated(o) => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("OperatorCreated", 2)?;
                st.serialize_field("operator_id", &o.operator_id)?;
                st.serialize_field("name", &o.name)?;
                st.end()
            }
            Event::PartnerKeyIssued(k) => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("PartnerKeyIssued", 2)?;
                st.serialize_field("partner_id", &k.partner_id)?;
                st.serialize_field("key_id", &k.key_id)?;
                st.end()
            }
            Event::PartnerKeyRotated(k) => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("PartnerKeyRotated", 3)?;
                st.serialize_field("partner_id", &k.partner_id)?;
                st.serialize_field("key_id", &k.key_id)?;
                st.serialize_field("grace_until", &k.grace_until.map(|t| t.timestamp_millis()))?;
                st.end()
            }
            Event::CredentialAdded(c) => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("CredentialAdded", 4)?;
                st.serialize_field("credential_id", &c.credential_id)?;
                st.serialize_field("provider", &c.provider)?;
                st.serialize_field("name", &c.name)?;
                st.serialize_field("base_url", &c.base_url)?;
                st.end()
            }
            Event::WebhookCreated(w) => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("WebhookCreated", 3)?;
                st.serialize_field("webhook_id", &w.webhook_id)?;
                st.serialize_field("url", &w.url)?;
                st.serialize_field("event_types", &w.event_types)?;
                st.end()
            }
            Event::WebhookSecretRotated(w) => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("WebhookSecretRotated", 2)?;
                st.serialize_field("webhook_id", &w.webhook_id)?;
                st.serialize_field("previous_until", &w.previous_until.timestamp_millis())?;
                st.end()
            }
            Event::CredentialRotated(c) => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("CredentialRotated", 1)?;
                st.serialize_field("credential_id", &c.credential_id)?;
                st.end()
            }
            Event::ApiKeyRotated(k) => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("ApiKeyRotated", 2)?;
                st.serialize_field("key_id", &k.key_id)?;
                st.serialize_field("grace_until", &k.grace_until.map(|t| t.timestamp_millis()))?;
                st.end()
            }
            other => other.serialize(s),
        }
    }
}

/// One event line, as read back: `data` stays JSON so any reader can use it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLine {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u16,
    pub recorded_at: String,
    pub data: serde_json::Value,
    pub metadata: Metadata,
    pub chain_hash: String,
    pub export_hash: String,
}

/// The last line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trailer {
    pub end: bool,
    pub count: u64,
    pub last_position: u64,
    /// The export hash of the last event line (the seed when there are none).
    pub final_hash: String,
}

/// The figures of a finished export or verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub tenant_id: TenantId,
    pub events: u64,
    pub head_position: u64,
    pub head_hash: String,
    pub final_hash: String,
}

/// Where and why an export failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("line {line}: not a line of a {FORMAT} export: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("line {line}: the header was edited (its hash does not match)")]
    HeaderEdited { line: u64 },
    #[error("line {line}: position {position} was edited (its hash does not match)")]
    Edited { line: u64, position: u64 },
    #[error(
        "line {line}: expected position {expected}, found {found} (an event was deleted, inserted or moved)"
    )]
    OutOfSequence { line: u64, expected: u64, found: u64 },
    #[error("line {line}: the trailer does not match the events before it: {reason}")]
    TrailerMismatch { line: u64, reason: String },
    #[error("the export ends after position {last_position} with no trailer: it was truncated")]
    Truncated { last_position: u64 },
    #[error("line {line}: content after the trailer")]
    TrailingContent { line: u64 },
    #[error("reading the export: {0}")]
    Io(String),
}

impl VerifyError {
    /// The first position found wrong (0 for the header, and for errors before any event).
    pub fn position(&self) -> u64 {
        match self {
            Self::Edited { position, .. } => *position,
            Self::OutOfSequence { expected, .. } => *expected,
            Self::Truncated { last_position } => last_position + 1,
            _ => 0,
        }
    }
}

fn seed(tenant: TenantId, head_position: u64, head_hash: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"tenantry/export/v1/seed");
    h.update(tenant.as_uuid().as_bytes());
    h.update(head_position.to_be_bytes());
    h.update(head_hash.as_bytes());
    h.finalize().into()
}

fn link(prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(body);
    h.finalize().into()
}

/// Serialise `value` as one line ending in its export hash, chained from `prev`.
fn write_line<W: Write, T: Serialize>(out: &mut W, prev: &[u8; 32], value: &T) -> std::io::Result<[u8; 32]> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    // Every value here is a JSON object: drop its closing brace to append the hash field.
    line.pop();
    let hash = link(prev, &line);
    line.extend_from_slice(HASH_KEY.as_bytes());
    line.extend_from_slice(hex::encode(hash).as_bytes());
    line.extend_from_slice(b"\"}\n");
    out.write_all(&line)?;
    Ok(hash)
}

/// Split a line into the bytes its hash covers and the hash it claims.
fn split_line(line: &str) -> Option<(&str, &str)> {
    let body = line.strip_suffix("\"}")?;
    let (covered, hash) = body.rsplit_once(HASH_KEY)?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then_some((covered, hash))
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Progress of a long export, called every few thousand events and at the end.
pub trait ExportProgress: Send {
    fn exported(&mut self, events: u64, head_position: u64);
}

impl ExportProgress for () {
    fn exported(&mut self, _: u64, _: u64) {}
}

/// Writes exports of one tenant's log.
#[derive(Debug)]
pub struct Exporter<'a> {
    store: &'a EventStore,
}

impl<'a> Exporter<'a> {
    pub fn new(store: &'a EventStore) -> Self {
        Self { store }
    }

    /// Export the context's tenant up to its current head into `out`, page by page: memory
    /// stays flat whatever the log's size. A tenant with no events is
    /// [`StoreError::UnknownTenant`].
    pub async fn export<W: Write + Send>(
        &self,
        ctx: &TenantContext,
        out: &mut W,
        progress: &mut dyn ExportProgress,
    ) -> Result<Summary, StoreError> {
        self.write(self.lines(ctx, None, None).await?, out, progress).await
    }

    /// Carry on an export that was interrupted: `resume` is what [`resume_point`] found in
    /// the partial file, whose bytes past `resume.valid_len` the caller has cut off. The
    /// export ends at the head recorded in its header, so the finished file is the one an
    /// uninterrupted run would have written.
    pub async fn resume<W: Write + Send>(
        &self,
        ctx: &TenantContext,
        resume: ResumePoint,
        out: &mut W,
        progress: &mut dyn ExportProgress,
    ) -> Result<Summary, StoreError> {
        self.write(self.lines(ctx, Some(resume), None).await?, out, progress).await
    }

    async fn write<W: Write + Send>(
        &self,
        lines: impl Stream<Item = Result<Chunk, StoreError>>,
        out: &mut W,
        progress: &mut dyn ExportProgress,
    ) -> Result<Summary, StoreError> {
        let mut lines = std::pin::pin!(lines);
        let mut summary = None;
        while let Some(item) = lines.next().await {
            match item? {
                Chunk::Bytes(bytes) => out.write_all(&bytes)?,
                Chunk::Progress(events, head) => progress.exported(events, head),
                Chunk::Done(s) => summary = Some(s),
            }
        }
        out.flush()?;
        summary.ok_or_else(|| StoreError::Io(std::io::Error::other("the log ended before the export's head")))
    }

    /// The export as a stream of byte chunks (a few hundred lines each), for HTTP bodies.
    pub async fn chunks(
        &self,
        ctx: &TenantContext,
    ) -> Result<impl Stream<Item = Result<Vec<u8>, StoreError>> + Send + 'static, StoreError> {
        Ok(Self::bytes(self.lines(ctx, None, None).await?))
    }

    /// A person's own export (GDPR articles 15 and 20) as byte chunks: the header names
    /// them, and only the events naming them follow, each with its position and chain hash,
    /// under the same export hash chain. A person whose key was destroyed exports as
    /// `[erased]`, like every copy of the log.
    pub async fn subject_chunks(
        &self,
        ctx: &TenantContext,
        subject: uuid::Uuid,
    ) -> Result<impl Stream<Item = Result<Vec<u8>, StoreError>> + Send + 'static, StoreError> {
        Ok(Self::bytes(self.lines(ctx, None, Some(subject)).await?))
    }

    fn bytes(
        lines: impl Stream<Item = Result<Chunk, StoreError>> + Send + 'static,
    ) -> impl Stream<Item = Result<Vec<u8>, StoreError>> + Send + 'static {
        lines.filter_map(|c| async move {
            match c {
                Ok(Chunk::Bytes(b)) => Some(Ok(b)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }

    async fn lines(
        &self,
        ctx: &TenantContext,
        resume: Option<ResumePoint>,
        subject: Option<uuid::Uuid>,
    ) -> Result<impl Stream<Item = Result<Chunk, StoreError>> + Send + 'static, StoreError> {
        let tenant = ctx.tenant_id;
        let mut first = Vec::new();
        let (header, prev, count) = match resume {
            Some(r) if r.header.tenant_id == tenant => (r.header, r.prev, r.count),
            Some(_) => {
                return Err(StoreError::Io(std::io::Error::other("the partial export is of another tenant")));
            }
            None => {
                let head = self.store.head(ctx).await?.ok_or(StoreError::UnknownTenant { tenant })?;
                let header = Header {
                    format: FORMAT.to_owned(),
                    tenant_id: tenant,
                    exported_at: timestamp(Utc::now()),
                    head_position: head.position,
                    head_hash: hex::encode(head.last_hash),
                    subject,
                };
                write_line(&mut first, &[0; 32], &header)?;
                let start = seed(tenant, head.position, &header.head_hash);
                (header, start, 0)
            }
        };
        let head = header.head_position;
        let events = self.store.read_log(ctx, count).take_while(move |e| {
            let keep = e.as_ref().map_or(true, |e| e.position <= head);
            async move { keep }
        });
        let selection = header.subject.map(Selection::new);
        let state = ExportState {
            tenant,
            prev,
            count,
            seen: count,
            last: count,
            head,
            header: header.head_hash,
            selection,
        };
        let body = events.chunks(512).scan(state, |state, page| {
            let out = match state.page(page) {
                Ok(chunks) => chunks.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            async move { Some(out) }
        });
        let body = body.flat_map(futures::stream::iter);
        Ok(futures::stream::once(async move { Ok(Chunk::Bytes(first)) }).chain(body))
    }
}

/// Where an interrupted export can carry on: its header, and the chain state after its last
/// complete, valid event line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    pub header: Header,
    prev: [u8; 32],
    pub count: u64,
    /// Bytes of the partial file that stay; the rest is cut off before resuming.
    pub valid_len: u64,
}

/// What a partial export file allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Not even a whole header: start again.
    Restart,
    /// Carry on from here.
    At(ResumePoint),
    /// The file already ends in a trailer.
    Complete,
}

/// Read a partial export and find where it can resume.
pub fn resume_point<R: BufRead>(mut input: R) -> Result<Resume, VerifyError> {
    let mut line = String::new();
    let mut read = |line: &mut String| -> Result<usize, VerifyError> {
        line.clear();
        input.read_line(line).map_err(|e| VerifyError::Io(e.to_string()))
    };
    let n = read(&mut line)?;
    if n == 0 || !line.ends_with('\n') {
        return Ok(Resume::Restart);
    }
    let Some((covered, claimed)) = split_line(line.trim_end_matches('\n')) else {
        return Ok(Resume::Restart);
    };
    let Ok(header) = serde_json::from_str::<Header>(&format!("{covered}}}")) else {
        return Ok(Resume::Restart);
    };
    // A person's export is made in one go (over HTTP): it is never resumed.
    if header.format != FORMAT
        || header.subject.is_some()
        || hex::encode(link(&[0; 32], covered.as_bytes())) != claimed
    {
        return Ok(Resume::Restart);
    }
    let mut point = ResumePoint {
        prev: seed(header.tenant_id, header.head_position, &header.head_hash),
        header,
        count: 0,
        valid_len: n as u64,
    };
    loop {
        let n = read(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            return Ok(Resume::At(point));
        }
        let text = line.trim_end_matches('\n');
        if text.starts_with("{\"end\":") {
            return Ok(Resume::Complete);
        }
        let Some((covered, claimed)) = split_line(text) else { return Ok(Resume::At(point)) };
        let Ok(event) = serde_json::from_str::<EventLine>(text) else { return Ok(Resume::At(point)) };
        let hash = link(&point.prev, covered.as_bytes());
        if event.position != point.count + 1 || hex::encode(hash) != claimed {
            return Ok(Resume::At(point));
        }
        point.prev = hash;
        point.count += 1;
        point.valid_len += n as u64;
    }
}

enum Chunk {
    Bytes(Vec<u8>),
    Progress(u64, u64),
    Done(Summary),
}

struct ExportState {
    tenant: TenantId,
    prev: [u8; 32],
    /// Event lines written.
    count: u64,
    /// Events read from the log (all of them, written or not).
    seen: u64,
    /// The position of the last event line written.
    last: u64,
    head: u64,
    header: String,
    /// A person's export: which events name them.
    selection: Option<Selection>,
}

/// The events of a person's export: those whose data or metadata holds the person's id, and
/// everything in the conversations those events opened.
struct Selection {
    names: Vec<String>,
}

impl Selection {
    fn new(subject: uuid::Uuid) -> Self {
        Self { names: vec![subject.to_string()] }
    }

    /// Whether `line` names the person (or one of their conversations); a conversation the
    /// person opens joins the names.
    fn takes(&mut self, line: &EventLineOut<'_>) -> Result<bool, StoreError> {
        let data = serde_json::to_value(&line.data).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
        let metadata =
            serde_json::to_value(line.metadata).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
        let named = |v: &serde_json::Value| mentions(v, &self.names);
        if !(named(&data) || named(&metadata) || self.names.iter().any(|n| line.stream.contains(n.as_str())))
        {
            return Ok(false);
        }
        if let Some(conversation) = data.get("conversation_id").and_then(|c| c.as_str())
            && !self.names.iter().any(|n| n == conversation)
        {
            self.names.push(conversation.to_owned());
        }
        Ok(true)
    }
}

/// Whether any string in `value` holds one of `names`.
fn mentions(value: &serde_json::Value, names: &[String]) -> bool {
    match value {
        serde_json::Value::String(s) => names.iter().any(|n| s.contains(n.as_str())),
        serde_json::Value::Array(items) => items.iter().any(|v| mentions(v, names)),
        serde_json::Value::Object(map) => map.values().any(|v| mentions(v, names)),
        _ => false,
    }
}

impl ExportState {
    /// Lines for one page of events; after the head, the trailer too.
    fn page(&mut self, page: Vec<Result<RecordedEvent, StoreError>>) -> Result<Vec<Chunk>, StoreError> {
        let mut out = Vec::with_capacity(page.len() * 400);
        for event in page {
            let e = event?;
            if e.position != self.seen + 1 {
                return Err(StoreError::ChainBroken {
                    tenant: e.tenant_id,
                    position: self.seen + 1,
                    reason: "event missing".into(),
                });
            }
            self.seen = e.position;
            let line = EventLineOut {
                position: e.position,
                stream: &e.stream_id,
                version: e.stream_version,
                event_id: e.event_id.to_string(),
                event_type: &e.event_type,
                schema_version: e.schema_version,
                recorded_at: timestamp(e.recorded_at),
                data: Public(&e.event),
                metadata: &e.metadata,
                chain_hash: hex::encode(e.hash),
            };
            if let Some(selection) = self.selection.as_mut()
                && !selection.takes(&line)?
            {
                continue;
            }
            self.prev = write_line(&mut out, &self.prev, &line)?;
            self.count += 1;
            self.last = e.position;
        }
        let done = self.seen == self.head;
        if done {
            let trailer = Trailer {
                end: true,
                count: self.count,
                last_position: self.last,
                final_hash: hex::encode(self.prev),
            };
            write_line(&mut out, &self.prev, &trailer)?;
        }
        let mut chunks = vec![Chunk::Bytes(out), Chunk::Progress(self.seen, self.head)];
        if done {
            chunks.push(Chunk::Done(Summary {
                tenant_id: self.tenant,
                events: self.count,
                head_position: self.head,
                head_hash: self.header.clone(),
                final_hash: hex::encode(self.prev),
            }));
        }
        Ok(chunks)
    }
}

/// Verify an export read from `input`, with no database: every line's hash, the positions
/// 1..=head with none missing, repeated or moved, and a trailer that matches. Memory stays
/// flat. `on_event` sees each verified event line (audit replay builds on it).
pub fn verify<R: BufRead>(
    input: R,
    mut on_event: impl FnMut(&Header, EventLine) -> Result<(), VerifyError>,
) -> Result<Summary, VerifyError> {
    let mut lines = input.lines();
    let mut number = 0u64;
    let mut next = |number: &mut u64| -> Result<Option<String>, VerifyError> {
        *number += 1;
        lines.next().transpose().map_err(|e| VerifyError::Io(e.to_string()))
    };
    let malformed = |line: u64, reason: String| VerifyError::Malformed { line, reason };

    let Some(first) = next(&mut number)? else {
        return Err(malformed(1, "the file is empty".into()));
    };
    let (covered, claimed) =
        split_line(&first).ok_or_else(|| malformed(1, "the header has no export hash".into()))?;
    let header: Header = serde_json::from_str(&format!("{covered}}}"))
        .map_err(|e| malformed(1, format!("not an export header: {e}")))?;
    if header.format != FORMAT {
        return Err(malformed(1, format!("format `{}` is not `{FORMAT}`", header.format)));
    }
    if hex::encode(link(&[0; 32], covered.as_bytes())) != claimed {
        return Err(VerifyError::HeaderEdited { line: 1 });
    }
    let mut prev = seed(header.tenant_id, header.head_position, &header.head_hash);
    let mut count = 0u64;
    let mut last_position = 0u64;
    let mut last_chain_hash = String::new();
    while let Some(text) = next(&mut number)? {
        let line = number;
        let (covered, claimed) =
            split_line(&text).ok_or_else(|| malformed(line, "the line has no export hash".into()))?;
        if covered.starts_with("{\"end\":") {
            let trailer: Trailer = serde_json::from_str(&format!("{covered}}}"))
                .map_err(|e| malformed(line, format!("not an export trailer: {e}")))?;
            let mismatch = |reason: &str| VerifyError::TrailerMismatch { line, reason: reason.into() };
            if hex::encode(link(&prev, covered.as_bytes())) != claimed {
                return Err(mismatch("its hash does not match"));
            }
            let whole = header.subject.is_none();
            if whole && count < header.head_position {
                return Err(VerifyError::Truncated { last_position: count });
            }
            let last_expected = if whole { header.head_position } else { last_position };
            if !trailer.end || trailer.count != count || trailer.last_position != last_expected {
                return Err(mismatch("event count"));
            }
            if trailer.final_hash != hex::encode(prev) {
                return Err(mismatch("final hash"));
            }
            if whole && count > 0 && last_chain_hash != header.head_hash {
                return Err(mismatch("the last event's chain hash is not the header's head hash"));
            }
            if next(&mut number)?.is_some_and(|rest| !rest.is_empty()) {
                return Err(VerifyError::TrailingContent { line: number });
            }
            return Ok(Summary {
                tenant_id: header.tenant_id,
                events: count,
                head_position: header.head_position,
                head_hash: header.head_hash,
                final_hash: trailer.final_hash,
            });
        }
        let event: EventLine = serde_json::from_str(&text)
            .map_err(|e| malformed(line, format!("not an export event line: {e}")))?;
        // A whole log has every position; a person's export increasing ones.
        let expected = last_position + 1;
        let in_sequence = match header.subject {
            None => event.position == expected,
            Some(_) => event.position >= expected,
        };
        if !in_sequence || event.position > header.head_position {
            return Err(VerifyError::OutOfSequence { line, expected, found: event.position });
        }
        let hash = link(&prev, covered.as_bytes());
        if hex::encode(hash) != claimed {
            return Err(VerifyError::Edited { line, position: event.position });
        }
        prev = hash;
        count += 1;
        last_position = event.position;
        last_chain_hash.clone_from(&event.chain_hash);
        on_event(&header, event)?;
    }
    Err(VerifyError::Truncated { last_position })
}

/// Parse an export line's `recorded_at`.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}
