//! The knowledge base: one `document-<id>` stream per document. The log records what a
//! document is (title, type, metadata, size, SHA-256); its body is kept beside the log,
//! sealed with the tenant's key, and written in the same transaction as `document.added`.

use crate::context::TenantContext;
use crate::event::{DocumentAdded, DocumentRemoved, Event};
use crate::ids::DocumentId;
use crate::rejection::Rejection;
use crate::tenant::TenantState;

/// Largest document body, in bytes of UTF-8.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Largest title, in characters.
pub const MAX_TITLE_CHARS: usize = 300;
/// Largest `metadata` object, as JSON text.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// The body types a document may have.
pub const CONTENT_TYPES: [&str; 2] = ["text/plain", "text/markdown"];
/// Longest chunk a body is split into for retrieval, in bytes.
pub const MAX_CHUNK_BYTES: usize = 2_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentState {
    pub exists: bool,
    pub removed: bool,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddDocument {
    pub document_id: DocumentId,
    pub title: String,
    pub content_type: String,
    /// A JSON object as text (`{}` when none was given).
    pub metadata: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentCommand {
    Add(AddDocument),
    Remove(DocumentId),
}

pub fn evolve(mut state: DocumentState, event: &Event) -> DocumentState {
    match event {
        Event::DocumentAdded(e) => {
            state.exists = true;
            state.size = e.size;
        }
        Event::DocumentRemoved(_) => state.removed = true,
        _ => {}
    }
    state
}

/// Who may write the knowledge base: the tenant's admins (and the platform), on a tenant that
/// exists and is not suspended.
fn writable(ctx: &TenantContext, tenant: &TenantState) -> Result<(), Rejection> {
    if !tenant.exists {
        return Err(Rejection::TenantNotFound);
    }
    if !ctx.role.can_administer() {
        return Err(Rejection::Forbidden);
    }
    if tenant.suspended {
        return Err(Rejection::TenantSuspended);
    }
    Ok(())
}

pub fn decide(
    ctx: &TenantContext,
    tenant: &TenantState,
    state: &DocumentState,
    command: &DocumentCommand,
) -> Result<Vec<Event>, Rejection> {
    writable(ctx, tenant)?;
    match command {
        DocumentCommand::Add(c) => {
            if state.exists {
                return Err(Rejection::DocumentAlreadyExists(c.document_id));
            }
            check(c)?;
            Ok(vec![Event::DocumentAdded(DocumentAdded {
                document_id: c.document_id,
                title: c.title.trim().to_owned(),
                content_type: c.content_type.clone(),
                metadata: c.metadata.clone(),
                size: c.body.len() as u64,
                sha256: sha256_hex(c.body.as_bytes()),
            })])
        }
        DocumentCommand::Remove(id) => {
            if !state.exists || state.removed {
                return Err(Rejection::DocumentNotFound(*id));
            }
            Ok(vec![Event::DocumentRemoved(DocumentRemoved { document_id: *id, size: state.size })])
        }
    }
}

fn check(c: &AddDocument) -> Result<(), Rejection> {
    let title = c.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(Rejection::invalid("title", format!("must be 1 to {MAX_TITLE_CHARS} characters")));
    }
    if title.chars().any(char::is_control) {
        return Err(Rejection::invalid("title", "must not hold control characters"));
    }
    if !CONTENT_TYPES.contains(&c.content_type.as_str()) {
        return Err(Rejection::invalid("content_type", "must be `text/plain` or `text/markdown`"));
    }
    if c.metadata.len() > MAX_METADATA_BYTES {
        return Err(Rejection::invalid(
            "metadata",
            format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
        ));
    }
    if !matches!(serde_json::from_str::<serde_json::Value>(&c.metadata), Ok(serde_json::Value::Object(_))) {
        return Err(Rejection::invalid("metadata", "must be a JSON object"));
    }
    if c.body.trim().is_empty() {
        return Err(Rejection::invalid("body", "must not be empty"));
    }
    if c.body.len() > MAX_BODY_BYTES {
        return Err(Rejection::invalid("body", format!("must be at most {MAX_BODY_BYTES} bytes")));
    }
    if c.body.contains('\0') {
        return Err(Rejection::invalid("body", "must be text (it holds a NUL character)"));
    }
    Ok(())
}

/// The SHA-256 of a body, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The chunks a body is split into for retrieval: consecutive, non-empty byte ranges on
/// character boundaries that cover the whole body, each at most [`MAX_CHUNK_BYTES`] long,
/// cut at a paragraph break where one is near the end, else at a line break, a sentence's
/// end, a space, and only as a last resort inside a word.
pub fn chunks(body: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < body.len() {
        let mut end = (start + MAX_CHUNK_BYTES).min(body.len());
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        if end < body.len() {
            let window = &body[start..end];
            // Cut in the second half of the window, at the best break found there.
            let floor = window.len() / 2;
            let cut = ["\n\n", "\n", ". ", " "]
                .iter()
                .find_map(|sep| window.rfind(sep).filter(|&i| i >= floor).map(|i| i + sep.len()));
            if let Some(cut) = cut {
                end = start + cut;
            }
        }
        out.push(start..end);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn chunks_cover_the_body_in_order_and_stay_short(body in "(\\PC{0,40}[ .\\n]{0,3}){0,400}") {
            let ranges = chunks(&body);
            let mut at = 0;
            for r in &ranges {
                prop_assert_eq!(r.start, at);
                prop_assert!(r.end > r.start);
                prop_assert!(r.end - r.start <= MAX_CHUNK_BYTES);
                prop_assert!(body.is_char_boundary(r.start) && body.is_char_boundary(r.end));
                at = r.end;
            }
            prop_assert_eq!(at, body.len());
        }
    }

    #[test]
    fn a_long_text_is_cut_at_paragraphs() {
        let paragraph = "word ".repeat(150);
        let body = format!("{paragraph}\n\n{paragraph}\n\n{paragraph}");
        let ranges = chunks(&body);
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        assert!(body[ranges[0].clone()].ends_with("\n\n"));
    }
}
