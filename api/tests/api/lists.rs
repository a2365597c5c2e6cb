//! Lists: every list pages with `next_cursor`, every page is reachable, and bad page
//! parameters are a 400 on every list.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// Walks a list one item a page; answers the ids seen, in order.
async fn walk(api: &Api, key: &str, path: &str, position: u64) -> Vec<String> {
    let (mut ids, mut cursor) = (Vec::new(), None::<String>);
    let sep = if path.contains('?') { '&' } else { '?' };
    loop {
        let page = match &cursor {
            None => format!("{path}{sep}limit=1"),
            Some(c) => format!("{path}{sep}limit=1&cursor={c}"),
        };
        let (s, body) = api.get_at(key, &page, position).await;
        assert_eq!(s, StatusCode::OK, "{page}: {body}");
        let items = body["items"].as_array().unwrap_or_else(|| panic!("{page}: no items: {body}"));
        assert!(items.len() <= 1, "{page}: {body}");
        ids.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        assert!(body.get("next_cursor").is_some(), "{page}: a list always says next_cursor");
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(ids.len() < 50, "{path}: the cursor does not move on");
    }
    ids
}

async fn lists(api: Api) {
    use Method as M;
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "pages", "name": "Pages"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let key = k["key"].as_str().unwrap().to_owned();
    let mut made: Vec<(String, Vec<String>)> = Vec::new();
    let mut last = 0;
    for (path, body) in [
        ("agents", json!({"name": "n", "model": "m"})),
        ("users", json!({"email": "x@pages.example", "role": "user"})),
        (
            "tools",
            json!({"name": "t", "endpoint": "https://tools.example/t", "parameters": {"type": "object"}}),
        ),
    ] {
        let mut ids = Vec::new();
        for n in 0..3 {
            let mut body = body.clone();
            for field in ["name", "email"] {
                if let Some(v) = body.get(field).and_then(|v| v.as_str()) {
                    body[field] = json!(format!("{n}{v}"));
                }
            }
            let (o, at) = api.create(&key, &format!("/v1/tenants/{t}/{path}"), body).await;
            ids.push(o["id"].as_str().unwrap().to_owned());
            last = at;
        }
        made.push((format!("/v1/tenants/{t}/{path}"), ids));
    }
    let agent = made[0].1[0].clone();
    let mut threads = Vec::new();
    for _ in 0..3 {
        let (c, _) =
            api.create(&key, &format!("/v1/tenants/{t}/conversations"), json!({"agent_id": agent})).await;
        threads.push(c["id"].as_str().unwrap().to_owned());
    }
    let with_messages = threads[0].clone();
    let mut messages = Vec::new();
    for n in 0..3 {
        let (m, at) = api
            .create(
                &key,
                &format!("/v1/tenants/{t}/conversations/{with_messages}/messages"),
                json!({"role": "user", "content": format!("m{n}")}),
            )
            .await;
        assert_eq!(m["seq"], n + 1, "messages count from 1");
        messages.push(m["id"].as_str().unwrap().to_owned());
        last = at;
    }

    for (path, mut ids) in made {
        let mut seen = walk(&api, &key, &path, last).await;
        ids.sort();
        seen.sort();
        assert_eq!(seen, ids, "{path}: every item on some page, once");
    }
    let mut seen = walk(&api, &key, &format!("/v1/tenants/{t}/conversations"), last).await;
    seen.sort();
    threads.sort();
    assert_eq!(seen, threads);
    let seen =
        walk(&api, &key, &format!("/v1/tenants/{t}/conversations/{with_messages}/messages"), last).await;
    assert_eq!(seen, messages, "messages in the order they were sent");
    let keys = walk(&api, &key, &format!("/v1/tenants/{t}/api-keys"), last).await;
    assert_eq!(keys, [k["id"].as_str().unwrap()]);
    let tenants = walk(&api, BOOTSTRAP, "/v1/tenants", last).await;
    assert!(tenants.contains(&t));

    // Bad page parameters are a 400 on every list, with the field at fault.
    let lists = [
        format!("/v1/tenants/{t}/agents"),
        format!("/v1/tenants/{t}/users"),
        format!("/v1/tenants/{t}/tools"),
        format!("/v1/tenants/{t}/api-keys"),
        format!("/v1/tenants/{t}/conversations"),
        format!("/v1/tenants/{t}/conversations/{with_messages}/messages"),
        format!("/v1/tenants/{t}/audit"),
        "/v1/tenants".to_owned(),
        "/v1/partners".to_owned(),
    ];
    for list in &lists {
        for (query, code) in [
            ("limit=0", "bad_request"),
            ("limit=201", "bad_request"),
            ("cursor=not-a-cursor", "invalid_cursor"),
        ] {
            let (s, body, _) = api.call(BOOTSTRAP, M::GET, &format!("{list}?{query}"), None).await;
            assert_eq!(
                (s, body["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some(code)),
                "{list}?{query}: {body}"
            );
        }
        let (s, body, _) = api.call(BOOTSTRAP, M::GET, &format!("{list}?limit=200"), None).await;
        assert_eq!(s, StatusCode::OK, "{list}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_list_pages_with_a_cursor_on_sqlite() {
    lists(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_list_pages_with_a_cursor_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    lists(Api::start(Some(h.url.clone())).await).await;
}
