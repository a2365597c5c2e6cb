//! The event feed: a tenant's admin pages through its own log, decoded and without secrets,
//! or follows it as Server-Sent Events, resuming with `Last-Event-ID`.

use std::time::Duration;

use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// Read a Server-Sent Events body until `events` events have arrived (at most 10 s): their
/// (id, type, data).
/// `text` keeps what was read so far across calls: the answer counts every event since the
/// stream opened.
async fn sse(res: &mut reqwest::Response, text: &mut String, events: usize) -> Vec<(u64, String, Value)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let parsed: Vec<(u64, String, Value)> = text
            .split("\n\n")
            .filter(|block| block.contains("data:"))
            .filter_map(|block| {
                let field = |name: &str| {
                    block.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim_start().to_owned())
                };
                Some((
                    field("id:")?.parse().ok()?,
                    field("event:")?,
                    serde_json::from_str(&field("data:")?).ok()?,
                ))
            })
            .collect();
        if parsed.len() >= events {
            return parsed;
        }
        let Ok(chunk) = tokio::time::timeout_at(deadline, res.chunk()).await else {
            panic!("{events} events did not arrive in time; the stream so far: {text}");
        };
        let chunk = chunk.unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk.expect("the stream stays open")));
    }
}

async fn the_event_feed_pages_and_streams(api: Api) {
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "feed", "name": "Feed"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let admin = k["key"].as_str().unwrap().to_owned();
    api.create(
        &admin,
        &format!("/v1/tenants/{t}/credentials"),
        json!({"provider": "openai", "name": "m", "secret": "sk-feed-secret-4242"}),
    )
    .await;
    let (agent, _) =
        api.create(&admin, &format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"})).await;

    // Pages, in position order, each naming where the next starts; the last says none.
    let (mut after, mut seen) = (0, Vec::new());
    loop {
        let (s, page, _) =
            api.call(&admin, M::GET, &format!("/v1/tenants/{t}/events?after={after}&limit=2"), None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for e in page["items"].as_array().unwrap() {
            seen.push(e.clone());
        }
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    let positions: Vec<u64> = seen.iter().map(|e| e["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, (1..=positions.len() as u64).collect::<Vec<_>>());
    let types: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"tenant.created") && types.contains(&"agent.created"), "{types:?}");
    let text = serde_json::to_string(&seen).unwrap();
    assert!(!text.contains("sk-feed-secret") && !text.contains("secret_hash"), "no secret in the feed");
    let (s, _, _) = api.call(&admin, M::GET, &format!("/v1/tenants/{t}/events?limit=501"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Far past the head, nothing (a position near the largest integer once overflowed).
    for after in [i64::MAX as u64, u64::MAX] {
        let (s, page, _) =
            api.call(&admin, M::GET, &format!("/v1/tenants/{t}/events?after={after}&limit=1"), None).await;
        assert_eq!((s, page["items"].clone()), (StatusCode::OK, json!([])), "{page}");
    }

    // The stream: what is there, then what comes.
    let url = format!("{}/v1/tenants/{t}/events/stream", api.base);
    let mut res = api.client.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut text = String::new();
    let first = sse(&mut res, &mut text, positions.len()).await;
    assert_eq!(first.iter().map(|e| e.0).collect::<Vec<_>>(), positions);
    let (conv, at) =
        api.create(&admin, &format!("/v1/tenants/{t}/conversations"), json!({"agent_id": agent["id"]})).await;
    let more = sse(&mut res, &mut text, positions.len() + 1).await;
    let (id, kind, data) = more.last().unwrap();
    assert_eq!((*id, kind.as_str()), (at, "conversation.opened"));
    assert_eq!(data["data"]["conversation_id"], conv["id"]);
    drop(res);

    // Resumed after a position: the events after it only.
    let mut res = api.client.get(&url).bearer_auth(&admin).header("last-event-id", "2").send().await.unwrap();
    let resumed = sse(&mut res, &mut String::new(), 1).await;
    assert_eq!(resumed[0].0, 3);
    let (s, _, _) = {
        let res = api.client.get(&url).bearer_auth(&admin).header("last-event-id", "x").send().await.unwrap();
        (res.status(), (), ())
    };
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Another tenant's admin, and this tenant's users, are refused.
    let (o, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "feed-other", "name": "O"})).await;
    let (ok, _) = api
        .create(
            BOOTSTRAP,
            &format!("/v1/tenants/{}/api-keys", o["id"].as_str().unwrap()),
            json!({"name": "a", "role": "admin"}),
        )
        .await;
    let other = ok["key"].as_str().unwrap();
    assert_eq!(
        api.call(other, M::GET, &format!("/v1/tenants/{t}/events"), None).await.0,
        StatusCode::FORBIDDEN
    );
    let res = api.client.get(&url).bearer_auth(other).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_feed_pages_and_streams_on_sqlite() {
    the_event_feed_pages_and_streams(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_feed_pages_and_streams_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    the_event_feed_pages_and_streams(Api::start(Some(h.url.clone())).await).await;
}
