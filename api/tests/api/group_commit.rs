//! Group commit under a crash: `tenantry serve` killed with SIGKILL while 64 clients append
//! messages to 8 tenants loses no append it acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::support::{BOOTSTRAP, free_port, post_ok, serve_process, up};

async fn a_killed_server_loses_no_acknowledged_append(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = serve_process(dir.path(), port, database_url.as_deref());
    up(&client, &base).await;
    let post = |key: &str, path: String, body: Value| {
        post_ok(client.clone(), format!("{base}{path}"), key.to_owned(), body)
    };
    let mut tenants = Vec::new();
    for i in 0..8 {
        let slug = format!("crash-{i}");
        let t =
            post(BOOTSTRAP, "/v1/tenants".into(), json!({"slug": slug, "name": "C", "plan": "enterprise"}))
                .await;
        let t = t["id"].as_str().unwrap().to_owned();
        let k =
            post(BOOTSTRAP, format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"})).await;
        let key = k["key"].as_str().unwrap().to_owned();
        let agent = post(&key, format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"})).await;
        let c = post(&key, format!("/v1/tenants/{t}/conversations"), json!({"agent_id": agent["id"]})).await;
        let messages = format!("{base}/v1/tenants/{t}/conversations/{}/messages", c["id"].as_str().unwrap());
        tenants.push((t, key, messages));
    }

    // 64 clients, 8 a tenant, each appending until the server is gone.
    let acked: Arc<Mutex<BTreeMap<usize, BTreeSet<String>>>> = Arc::default();
    let gone = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for task in 0..64 {
        let tenant = task % 8;
        let (client, acked, gone) = (client.clone(), acked.clone(), gone.clone());
        let (key, messages) = (tenants[tenant].1.clone(), tenants[tenant].2.clone());
        clients.push(tokio::spawn(async move {
            for n in 0.. {
                let body = json!({"role": "user", "content": format!("message {n} of client {task}")});
                let Ok(res) = client.post(&messages).bearer_auth(&key).json(&body).send().await else {
                    break;
                };
                match res.status() {
                    StatusCode::CREATED => {
                        let Ok(row) = res.json::<Value>().await else { break };
                        let id = row["id"].as_str().unwrap().to_owned();
                        acked.lock().unwrap().entry(tenant).or_default().insert(id);
                    }
                    // Refused under load (limits, a stream that moved): nothing was promised.
                    s if s.is_client_error() => tokio::time::sleep(Duration::from_millis(5)).await,
                    s => panic!("{s}"),
                }
                if gone.load(Ordering::SeqCst) {
                    break;
                }
            }
        }));
    }
    let acknowledged = || acked.lock().unwrap().values().map(BTreeSet::len).sum::<usize>();
    for _ in 0..600 {
        if acknowledged() >= 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    gone.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let total: usize = acked.values().map(BTreeSet::len).sum();
    assert!(total >= 400, "the load ran before the kill ({total} acknowledged)");

    // After a restart every acknowledged message is in its tenant's log.
    let mut server = serve_process(dir.path(), port, database_url.as_deref());
    up(&client, &base).await;
    for (tenant, (t, key, _)) in tenants.iter().enumerate() {
        let mut stored = BTreeSet::new();
        let mut after = 0;
        loop {
            let url = format!("{base}/v1/tenants/{t}/events?after={after}&limit=500");
            let page: Value = client.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap();
            let Some(items) = page["items"].as_array() else { panic!("{page}") };
            for e in items {
                if let Some(id) = e["data"]["message_id"].as_str() {
                    stored.insert(id.to_owned());
                }
            }
            match page["next_after"].as_u64() {
                Some(next) => after = next,
                None => break,
            }
        }
        let lost: Vec<&String> =
            acked.get(&tenant).into_iter().flatten().filter(|id| !stored.contains(*id)).collect();
        assert!(lost.is_empty(), "tenant {tenant} lost {} acknowledged messages: {lost:?}", lost.len());
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_append_on_sqlite() {
    a_killed_server_loses_no_acknowledged_append(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_append_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    a_killed_server_loses_no_acknowledged_append(Some(h.url.clone())).await;
}
