//! Traces over OTLP: a receiver in the test takes what the server exports (OTLP/HTTP, JSON),
//! and one command's spans form one tree: the request, its decision, its append and the wait
//! for the read model, with the tenant and the route on the request's span.
//! (A binary of its own: the tracing subscriber is the process's.)

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::BOOTSTRAP;

/// Every span the receiver got: id to (parent id, name, trace id, string attributes).
type Spans = HashMap<String, (String, String, String, HashMap<String, String>)>;

fn spans_of(bodies: &[Value]) -> Spans {
    let mut out = HashMap::new();
    for body in bodies {
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let attributes = s["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| {
                            let v = &a["value"];
                            let text = v["stringValue"]
                                .as_str()
                                .map(str::to_owned)
                                .or_else(|| v["intValue"].as_str().map(str::to_owned))
                                .or_else(|| v["intValue"].as_i64().map(|n| n.to_string()))?;
                            Some((a["key"].as_str()?.to_owned(), text))
                        })
                        .collect();
                    out.insert(
                        s["spanId"].as_str().unwrap().to_owned(),
                        (
                            s["parentSpanId"].as_str().unwrap_or_default().to_owned(),
                            s["name"].as_str().unwrap().to_owned(),
                            s["traceId"].as_str().unwrap().to_owned(),
                            attributes,
                        ),
                    );
                }
            }
        }
    }
    out
}

/// Whether `ancestor` is above `span` in its tree.
fn descends(spans: &Spans, span: &str, ancestor: &str) -> bool {
    let mut at = span.to_owned();
    for _ in 0..64 {
        match spans.get(&at) {
            Some((parent, ..)) if parent == ancestor => return true,
            Some((parent, ..)) if !parent.is_empty() => at = parent.clone(),
            _ => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_one_span_tree_exported_over_otlp() {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let got = bodies.clone();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let got = got.clone();
            async move {
                got.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let telemetry = tenantry::telemetry::init(Some(&endpoint)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let settings = support::server_settings(dir.path(), None, None);
    let app = tenantry::Application::build(&settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::new();
    let post = |key: &str, path: String, body: Value| {
        let (client, key, url) = (client.clone(), key.to_owned(), format!("{base}{path}"));
        async move {
            client.post(url).bearer_auth(key).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let t = post(BOOTSTRAP, "/v1/tenants".into(), json!({"slug": "traced", "name": "T"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let k = post(BOOTSTRAP, format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"})).await;
    let key = k["key"].as_str().unwrap().to_owned();
    post(&key, format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"})).await;

    let mut tree = None;
    for _ in 0..100 {
        telemetry.flush();
        let spans = spans_of(&bodies.lock().unwrap());
        let request = spans.iter().find(|(_, (_, name, _, a))| {
            name == "request"
                && a.get("http.route").map(String::as_str) == Some("/v1/tenants/{tenant_id}/agents")
                && a.get("http.request.method").map(String::as_str) == Some("POST")
        });
        if let Some((id, (_, _, trace, attributes))) = request {
            let under = |name: &str| {
                spans
                    .iter()
                    .find(|(s, (_, n, tr, _))| n == name && tr == trace && descends(&spans, s, id))
                    .map(|(s, (_, _, _, a))| (s.clone(), a.clone()))
            };
            if let (Some(decide), Some(append), Some(project)) =
                (under("decide"), under("append"), under("project"))
            {
                tree = Some((attributes.clone(), decide, append, project, spans.clone()));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (request, decide, append, project, spans) = tree.expect("the command's spans arrived as one tree");
    assert_eq!(request.get("tenant.id"), Some(&t), "{request:?}");
    assert_eq!(request.get("http.response.status_code").map(String::as_str), Some("201"));
    assert_eq!(decide.1.get("tenant_id"), Some(&t));
    assert_eq!(decide.1.get("command").map(String::as_str), Some("tenant"));
    assert!(descends(&spans, &append.0, &decide.0), "the append is inside the decision");
    assert_eq!(project.1.get("tenant_id"), Some(&t));
}
