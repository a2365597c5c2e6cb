//! The per-tenant hash chain: each event stores the SHA-256 of the previous event's hash and
//! its own envelope and ciphertext, so any edit, deletion or reordering is detected.

use sha2::{Digest, Sha256};

/// The `prev_hash` of a tenant's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// Everything the chain covers of one event.
#[derive(Debug, Clone, Copy)]
pub struct ChainLink<'a> {
    pub tenant_id: &'a [u8; 16],
    pub position: u64,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event_id: &'a [u8; 16],
    pub event_type: &'a str,
    pub schema_version: u16,
    pub recorded_at: i64,
    pub payload: &'a [u8],
    pub metadata: &'a [u8],
}

fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// The hash of `link` chained to `prev`. Variable-length fields are length-prefixed, so no
/// two different links hash the same input.
pub fn link_hash(prev: &[u8; 32], link: &ChainLink<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"tenantry/chain/v1");
    h.update(prev);
    h.update(link.tenant_id);
    h.update(link.position.to_be_bytes());
    field(&mut h, link.stream_id.as_bytes());
    h.update(link.stream_version.to_be_bytes());
    h.update(link.event_id);
    field(&mut h, link.event_type.as_bytes());
    h.update(link.schema_version.to_be_bytes());
    h.update(link.recorded_at.to_be_bytes());
    field(&mut h, link.payload);
    field(&mut h, link.metadata);
    h.finalize().into()
}

/// What a verified range holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub first_position: u64,
    pub last_position: u64,
    pub events: u64,
    pub last_hash: [u8; 32],
}
