//! Exports: what they hold, that they are deterministic, and that `verify` catches every
//! edit, deletion, insertion, reordering and truncation. On both backends.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)] // the tampering helpers serve the conformance suite
#[macro_use]
mod support;

use rand::Rng;
use rand::seq::SliceRandom;
use support::{Harness, agent_created, new_event};
use tenantry_domain::{StreamId, TenantContext, TenantId};
use tenantry_store::export::{self, Exporter, VerifyError};
use tenantry_store::{AppendRequest, EventStore, ExpectedVersion, StoreError};

on_both_backends!(
    an_export_holds_every_event_and_verifies,
    two_exports_differ_only_in_the_header,
    every_mutation_of_an_export_is_caught,
    unknown_tenants_do_not_export,
    an_interrupted_export_resumes_to_the_same_bytes,
);

/// A tenant with `n` events over five streams, appended in batches.
async fn seeded(store: &EventStore, n: usize) -> TenantContext {
    let ctx = TenantContext::system(TenantId::new());
    let mut written = 0;
    while written < n {
        let stream: StreamId = format!("agent-{}", written % 5).parse().unwrap();
        let batch: Vec<_> = (0..(n - written).min(7))
            .map(|i| new_event(&agent_created(&format!("a{}", written + i))))
            .collect();
        written += batch.len();
        store.append(&ctx, AppendRequest::to_stream(stream, ExpectedVersion::Any, batch)).await.unwrap();
    }
    ctx
}

async fn export_bytes(store: &EventStore, ctx: &TenantContext) -> Vec<u8> {
    let mut out = Vec::new();
    Exporter::new(store).export(ctx, &mut out, &mut ()).await.unwrap();
    out
}

fn check(bytes: &[u8]) -> Result<export::Summary, VerifyError> {
    export::verify(bytes, |_, _| Ok(()))
}

async fn an_export_holds_every_event_and_verifies(store: &EventStore) {
    let ctx = seeded(store, 1_234).await;
    let head = store.head(&ctx).await.unwrap().unwrap();
    let bytes = export_bytes(store, &ctx).await;
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(text.lines().count(), 1_234 + 2, "header, one line per event, trailer");

    let mut seen = Vec::new();
    let summary = export::verify(bytes.as_slice(), |header, line| {
        assert_eq!(header.tenant_id, ctx.tenant_id);
        seen.push(line);
        Ok(())
    })
    .unwrap();
    assert_eq!(summary.events, 1_234);
    assert_eq!(summary.head_position, head.position);
    assert_eq!(summary.head_hash, hex::encode(head.last_hash));
    let positions: Vec<u64> = seen.iter().map(|l| l.position).collect();
    assert_eq!(positions, (1..=1_234).collect::<Vec<_>>());
    let first = &seen[0];
    assert_eq!(first.event_type, "agent.created");
    assert_eq!(first.schema_version, 2);
    assert_eq!(first.stream, "agent-0");
    assert_eq!(first.data["name"], "a0");
    assert_eq!(first.metadata.actor, "system");
    assert_eq!(seen.last().unwrap().chain_hash, hex::encode(head.last_hash));
}

async fn two_exports_differ_only_in_the_header(store: &EventStore) {
    let ctx = seeded(store, 300).await;
    let first = export_bytes(store, &ctx).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = export_bytes(store, &ctx).await;
    let body = |b: &[u8]| b.splitn(2, |c| *c == b'\n').nth(1).unwrap().to_vec();
    assert_eq!(body(&first), body(&second));
    check(&first).unwrap();
    check(&second).unwrap();
}

async fn every_mutation_of_an_export_is_caught(store: &EventStore) {
    let ctx = seeded(store, 200).await;
    let bytes = export_bytes(store, &ctx).await;
    check(&bytes).unwrap();
    let lines: Vec<Vec<u8>> = bytes.split_inclusive(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
    let mut rng = rand::thread_rng();
    for round in 0..600 {
        let mut mutated = lines.clone();
        let what = round % 6;
        match what {
            // Edit: one byte of one line becomes another printable byte.
            0 => {
                let l = rng.gen_range(0..mutated.len());
                let i = rng.gen_range(0..mutated[l].len() - 1);
                let old = mutated[l][i];
                let mut new = old;
                while new == old {
                    new = rng.gen_range(b' '..=b'~');
                }
                mutated[l][i] = new;
            }
            // Deletion of any line.
            1 => {
                mutated.remove(rng.gen_range(0..mutated.len()));
            }
            // Insertion: a copy of an event line elsewhere.
            2 => {
                let from = rng.gen_range(1..mutated.len() - 1);
                let copy = mutated[from].clone();
                mutated.insert(rng.gen_range(1..mutated.len()), copy);
            }
            // Reordering of two event lines.
            3 => {
                let a = rng.gen_range(1..mutated.len() - 1);
                let mut b = a;
                while b == a {
                    b = rng.gen_range(1..mutated.len() - 1);
                }
                mutated.swap(a, b);
            }
            // Reordering of a whole run.
            4 => {
                let body = &mut mutated[1..lines.len() - 1];
                let (a, b) = (rng.gen_range(0..body.len() - 2), rng.gen_range(2..10));
                let end = (a + b).min(body.len());
                body[a..end].shuffle(&mut rng);
                if mutated == lines {
                    continue; // the shuffle put the run back in order
                }
            }
            // Truncation anywhere before the final newline.
            _ => {
                let mut flat = mutated.concat();
                flat.truncate(rng.gen_range(0..flat.len() - 1));
                mutated = vec![flat];
            }
        }
        let result = check(&mutated.concat());
        assert!(result.is_err(), "mutation {what} in round {round} went unnoticed");
    }
}

async fn an_interrupted_export_resumes_to_the_same_bytes(store: &EventStore) {
    let ctx = seeded(store, 1_000).await;
    let whole = export_bytes(store, &ctx).await;
    let mut rng = rand::thread_rng();
    for round in 0..12 {
        if round == 6 {
            // The log grows after the export began: the resumed file still ends at the head
            // its header recorded.
            let stream: StreamId = "agent-0".parse().unwrap();
            let more = (0..10).map(|i| new_event(&agent_created(&format!("late{i}")))).collect();
            store.append(&ctx, AppendRequest::to_stream(stream, ExpectedVersion::Any, more)).await.unwrap();
        }
        // Killed after writing any number of bytes; later events appended meanwhile.
        let cut = rng.gen_range(0..whole.len());
        let partial = &whole[..cut];
        let mut out = match export::resume_point(partial).unwrap() {
            export::Resume::At(point) => {
                let mut out = partial[..point.valid_len as usize].to_vec();
                assert!(point.count <= 1_000);
                Exporter::new(store).resume(&ctx, point, &mut out, &mut ()).await.unwrap();
                out
            }
            export::Resume::Restart => {
                assert!(cut < 300, "only a cut inside the header restarts ({cut})");
                continue;
            }
            export::Resume::Complete => unreachable!("a cut before the end has no trailer"),
        };
        assert_eq!(out.len(), whole.len());
        assert!(out == whole, "the resumed export differs from the uninterrupted one (cut at {cut})");
        out.clear();
    }
    assert_eq!(export::resume_point(whole.as_slice()).unwrap(), export::Resume::Complete);
}

async fn unknown_tenants_do_not_export(store: &EventStore) {
    let ctx = TenantContext::system(TenantId::new());
    let err = Exporter::new(store).export(&ctx, &mut Vec::new(), &mut ()).await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownTenant { tenant } if tenant == ctx.tenant_id));
}

#[test]
fn verify_names_the_line_of_bad_input() {
    assert!(matches!(check(b""), Err(VerifyError::Malformed { line: 1, .. })));
    assert!(matches!(check(b"not json\n"), Err(VerifyError::Malformed { line: 1, .. })));
    assert!(matches!(check(b"{\"format\":1}\n"), Err(VerifyError::Malformed { line: 1, .. })));
}

#[tokio::test]
async fn truncation_names_the_first_missing_position() {
    let h = Harness::sqlite().await;
    let ctx = seeded(&h.store, 50).await;
    let bytes = export_bytes(&h.store, &ctx).await;
    let text = String::from_utf8(bytes).unwrap();
    let kept: String = text.lines().take(21).map(|l| format!("{l}\n")).collect();
    let err = check(kept.as_bytes()).unwrap_err();
    assert_eq!(err, VerifyError::Truncated { last_position: 20 });
    assert_eq!(err.position(), 21);

    let lines: Vec<&str> = text.lines().collect();
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    edited[10] = edited[10].replacen("\"a", "\"b", 1);
    let err = check(edited.join("\n").as_bytes()).unwrap_err();
    assert_eq!(err, VerifyError::Edited { line: 11, position: 10 });
}
