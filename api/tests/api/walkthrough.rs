//! Every route once, and a second tenant that reaches nothing of the first.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

async fn walkthrough(api: Api) {
    use Method as M;
    // Tenants, by the platform operator.
    let (a, _) = api
        .create(
            BOOTSTRAP,
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme", "limits": {"max_agents": 2}}),
        )
        .await;
    assert_eq!((a["slug"].as_str(), a["status"].as_str()), (Some("acme"), Some("active")));
    assert!(chrono::DateTime::parse_from_rfc3339(a["created_at"].as_str().unwrap()).is_ok(), "{a}");
    let ta = a["id"].as_str().unwrap().to_owned();
    let (s, b, _) =
        api.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(json!({"slug": "bolt", "name": "Bolt"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let tb = b["id"].as_str().unwrap().to_owned();
    let (s, got) = api.get_at(BOOTSTRAP, &format!("/v1/tenants/{ta}"), 1).await;
    assert_eq!((s, got["slug"].as_str()), (StatusCode::OK, Some("acme")));
    let (s, _, _) =
        api.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(json!({"slug": "acme", "name": "Again"}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "a taken slug");
    let (s, _, _) = api
        .call(
            BOOTSTRAP,
            M::POST,
            "/v1/tenants",
            Some(json!({"slug": "typo", "name": "T", "limits": {"max_agentz": 1}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "an unknown limit name");

    // Keys: the secret is answered once and works at once.
    let (ka, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{ta}/api-keys"), json!({"name": "ops", "role": "admin"}))
        .await;
    let key_a = ka["key"].as_str().unwrap().to_owned();
    let (_, kb, _) = api
        .call(
            BOOTSTRAP,
            M::POST,
            &format!("/v1/tenants/{tb}/api-keys"),
            Some(json!({"name": "ops", "role": "admin"})),
        )
        .await;
    let key_b = kb["key"].as_str().unwrap().to_owned();
    // A user key acts as one user of the tenant, and must name it.
    let (s, _, _) = api
        .call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/api-keys"),
            Some(json!({"name": "bot", "role": "user"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, bot, _) = api
        .call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/users"),
            Some(json!({"email": "bot@acme.example", "role": "user"})),
        )
        .await;
    let bot = bot["id"].as_str().unwrap().to_owned();
    let (_, ku, _) = api
        .call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/api-keys"),
            Some(json!({"name": "bot", "role": "user", "user_id": bot})),
        )
        .await;
    let key_user = ku["key"].as_str().unwrap().to_owned();
    let (s, _, _) = api
        .call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/api-keys"),
            Some(json!({"name": "x", "role": "super_admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "no key above its maker");

    // Agents, within the limit of 2.
    let (ag, pos) = api
        .create(
            &key_a,
            &format!("/v1/tenants/{ta}/agents"),
            json!({"name": "support", "model": "model-small"}),
        )
        .await;
    let agent = ag["id"].as_str().unwrap().to_owned();
    let (s, list) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/agents"), pos).await;
    assert_eq!((s, list["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    let (s, _, _) = api
        .call(
            &key_a,
            M::PATCH,
            &format!("/v1/tenants/{ta}/agents/{agent}"),
            Some(json!({"name": "helpdesk"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    api.call(
        &key_a,
        M::POST,
        &format!("/v1/tenants/{ta}/agents"),
        Some(json!({"name": "second", "model": "m"})),
    )
    .await;
    let (s, limit, _) = api
        .call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/agents"),
            Some(json!({"name": "third", "model": "m"})),
        )
        .await;
    assert_eq!((s, limit["limit"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("max_agents")));
    let (s, _, _) = api
        .call(
            &key_user,
            M::POST,
            &format!("/v1/tenants/{ta}/agents"),
            Some(json!({"name": "u", "model": "m"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a user key cannot manage agents");

    // A conversation with a message that carries usage.
    let (conv, _) = api
        .create(&key_a, &format!("/v1/tenants/{ta}/conversations"), json!({"agent_id": agent, "title": "hi"}))
        .await;
    let conv = conv["id"].as_str().unwrap().to_owned();
    let sent = json!({"role": "assistant", "content": "hello", "model": "model-small", "usage": {"prompt_tokens": 10, "completion_tokens": 5}});
    let (msg, pos) =
        api.create(&key_a, &format!("/v1/tenants/{ta}/conversations/{conv}/messages"), sent.clone()).await;
    assert_eq!(
        (msg["seq"].as_u64(), &msg["usage"]),
        (Some(1), &sent["usage"]),
        "what goes in comes out: {msg}"
    );
    let (_, msgs) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/conversations/{conv}/messages"), pos).await;
    assert_eq!(msgs["items"][0]["content"], "hello");
    let (_, threads) =
        api.get_at(&key_a, &format!("/v1/tenants/{ta}/conversations?agent_id={agent}"), pos).await;
    assert_eq!(threads["items"][0]["message_count"], 1);
    let (_, usage) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/usage"), pos).await;
    assert_eq!(usage["total_tokens"], 15, "message usage is billed once");
    let (s, rec, _) = api.call(&key_a, M::POST, &format!("/v1/tenants/{ta}/usage"), Some(json!({"model": "model-small", "kind": "embedding", "prompt_tokens": 7, "completion_tokens": 0, "request_id": "r-1"}))).await;
    assert_eq!((s, rec["recorded"].as_bool()), (StatusCode::CREATED, Some(true)));
    let (s, rec, pos) = api.call(&key_a, M::POST, &format!("/v1/tenants/{ta}/usage"), Some(json!({"model": "model-small", "kind": "embedding", "prompt_tokens": 7, "completion_tokens": 0, "request_id": "r-1"}))).await;
    assert_eq!((s, rec["recorded"].as_bool()), (StatusCode::OK, Some(false)), "idempotent on request_id");
    let (_, quotas) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/quotas"), pos.unwrap()).await;
    let tokens =
        quotas["items"].as_array().unwrap().iter().find(|q| q["limit"] == "tokens_per_month").unwrap();
    assert_eq!(tokens["used"], 22);
    let (s, audit) =
        api.get_at(&key_a, &format!("/v1/tenants/{ta}/audit?action=agent.created"), pos.unwrap()).await;
    assert_eq!((s, audit["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)));

    // The user key sees its own conversations only.
    let (mine, mine_at) = api
        .create(
            &key_user,
            &format!("/v1/tenants/{ta}/conversations"),
            json!({"agent_id": agent, "user_id": bot}),
        )
        .await;
    let (s, own, own_at) = api
        .call(
            &key_user,
            M::POST,
            &format!("/v1/tenants/{ta}/conversations"),
            Some(json!({"agent_id": agent})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "a user key naming no user opens the conversation as its user: {own}");
    let (_, listed) =
        api.get_at(&key_user, &format!("/v1/tenants/{ta}/conversations"), own_at.unwrap()).await;
    let mut ids: Vec<_> =
        listed["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    let mut expected = vec![mine["id"].as_str().unwrap().to_owned(), own["id"].as_str().unwrap().to_owned()];
    expected.sort();
    assert_eq!(ids, expected, "only its own threads");
    let (s, none) = api
        .get_at(
            &key_user,
            &format!("/v1/tenants/{ta}/conversations/{}/messages", mine["id"].as_str().unwrap()),
            mine_at,
        )
        .await;
    assert_eq!((s, none["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{none}");
    let (s, _, _) =
        api.call(&key_user, M::GET, &format!("/v1/tenants/{ta}/conversations/{conv}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another's thread is not there");
    let (s, _, _) =
        api.call(&key_user, M::GET, &format!("/v1/tenants/{ta}/conversations/{conv}/messages"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = api
        .call(
            &key_user,
            M::POST,
            &format!("/v1/tenants/{ta}/conversations/{conv}/messages"),
            Some(json!({"role": "user", "content": "hi"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Users and tools.
    let (user, _) = api
        .create(
            &key_a,
            &format!("/v1/tenants/{ta}/users"),
            json!({"email": "ann@acme.example", "role": "user"}),
        )
        .await;
    let user = user["id"].as_str().unwrap().to_owned();
    let (s, _, _) = api
        .call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/users"),
            Some(json!({"email": "ANN@acme.example", "role": "user"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "emails are unique per tenant");
    let (s, _, _) = api
        .call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/users"),
            Some(json!({"email": "not-an-email", "role": "user"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let params = json!({"type": "object", "properties": {"q": {"type": "string"}}});
    let (tool, _) = api
        .create(
            &key_a,
            &format!("/v1/tenants/{ta}/tools"),
            json!({"name": "search", "endpoint": "https://tools.example/s", "parameters": params}),
        )
        .await;
    assert_eq!(tool["parameters"], params, "parameters come back as the JSON sent");
    let tool = tool["id"].as_str().unwrap().to_owned();
    let (s, _, _) = api
        .call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/tools"),
            Some(json!({"name": "bad", "endpoint": "x", "parameters": 3})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _, pos) = api
        .call(&key_a, M::PATCH, &format!("/v1/tenants/{ta}/tools/{tool}"), Some(json!({"enabled": false})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, got) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/tools/{tool}"), pos.unwrap()).await;
    assert_eq!(got["enabled"], false);
    let (_, got) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/users/{user}"), pos.unwrap()).await;
    assert_eq!(got["email"], "ann@acme.example");
    let (s, _, _) = api.call(&key_user, M::GET, &format!("/v1/tenants/{ta}/users"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a user key cannot list users");

    // Tenant B's admin reaches nothing of A on any route, and learns nothing.
    // A key the matrix may revoke without harm.
    let (_, spare, _) = api
        .call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/api-keys"),
            Some(json!({"name": "spare", "role": "admin"})),
        )
        .await;
    let spare_key = spare["id"].as_str().unwrap().to_owned();
    let (credential, _) = api
        .create(
            &key_a,
            &format!("/v1/tenants/{ta}/credentials"),
            json!({"provider": "openai", "name": "acme-openai", "secret": "sk-acme-secret-1234"}),
        )
        .await;
    assert_eq!((credential["last4"].as_str(), credential.get("secret")), (Some("1234"), None));
    let (document, _) = api
        .create(
            &key_a,
            &format!("/v1/tenants/{ta}/documents"),
            json!({"title": "acme handbook", "body": "How acme answers the helpdesk."}),
        )
        .await;
    let (webhook, _) = api
        .create(
            &key_a,
            &format!("/v1/tenants/{ta}/webhooks"),
            json!({"url": "https://hooks.acme.example/in"}),
        )
        .await;
    // Every tenant route of the OpenAPI description, with A's ids: adding a route with a
    // parameter this table does not know fails the test until it is covered.
    let ids = [
        ("tenant_id", ta.clone()),
        ("agent_id", agent.clone()),
        ("conversation_id", conv.clone()),
        ("user_id", user.clone()),
        ("tool_id", tool.clone()),
        ("key_id", spare_key.clone()),
        ("message_id", msg["id"].as_str().unwrap().to_owned()),
        ("credential_id", credential["id"].as_str().unwrap().to_owned()),
        ("document_id", document["id"].as_str().unwrap().to_owned()),
        ("webhook_id", webhook["id"].as_str().unwrap().to_owned()),
        ("position", "1".to_owned()),
    ];
    let doc = serde_json::to_value(tenantry::http::openapi()).unwrap();
    let mut a_paths = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.contains("{tenant_id}") {
            continue;
        }
        let mut path = template.clone();
        for (name, value) in &ids {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(!path.contains('{'), "the cross-tenant matrix does not cover {template}");
        for method in item.as_object().unwrap().keys() {
            a_paths.push((method.to_uppercase().parse::<M>().unwrap(), path.clone()));
        }
    }
    assert!(a_paths.len() >= 35, "{} tenant routes: one went missing from the description", a_paths.len());
    for (method, path) in &a_paths {
        let (s, body, _) = api.call(&key_b, method.clone(), path, Some(json!({}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}");
        let text = body.to_string();
        assert!(
            !text.contains("acme") && !text.contains("helpdesk") && !text.contains("hello"),
            "{method} {path} leaked: {text}"
        );
    }
    // Malformed input on every route: never a 5xx.
    for (method, path) in &a_paths {
        let url = format!("{}{path}", api.base);
        let bad_json = api
            .client
            .request(method.clone(), &url)
            .bearer_auth(&key_a)
            .header("content-type", "application/json")
            .body("{\"name\": ");
        let unknown = api
            .client
            .request(method.clone(), &url)
            .bearer_auth(&key_a)
            .json(&json!({"zzz": 1, "name": [1, 2]}));
        let bad_id = api
            .client
            .request(method.clone(), format!("{}{}", api.base, path.replace(&ta, "0000-not-a-uuid")))
            .bearer_auth(&key_a);
        for req in [bad_json, unknown, bad_id] {
            let status = req.send().await.unwrap().status();
            assert!(!status.is_server_error(), "{method} {path}: {status}");
        }
    }

    // A user key: conversations, messages and usage; no management, no audit, no keys.
    for (method, path) in &a_paths {
        // Tenant-wide reports, settings and usage records are for administrators.
        let user_may = *method == M::GET
            && ![
                "/api-keys",
                "/users",
                "/audit",
                "/export",
                "/usage",
                "/quotas",
                "/settings",
                "/credentials",
                "/runtime",
                "/events",
                "/webhooks",
                "/analytics",
                "/budget",
            ]
            .iter()
            .any(|p| path.contains(p))
            || (*method == M::POST && (path.ends_with("/conversations") || path.ends_with("/messages")))
            // A user retitles and archives their own conversations (another's is not there).
            || (path.contains("/conversations/") && !path.contains("/messages") && *method != M::GET);
        let (s, _, _) = api.call(&key_user, method.clone(), path, Some(json!({}))).await;
        if user_may {
            assert_ne!(s, StatusCode::FORBIDDEN, "user {method} {path}");
        } else {
            assert!(
                s == StatusCode::FORBIDDEN
                    || s == StatusCode::BAD_REQUEST
                    || s == StatusCode::UNPROCESSABLE_ENTITY,
                "user {method} {path}: {s}"
            );
        }
    }

    // A's objects under B's own path are simply not there.
    let (s, _, _) = api.call(&key_b, M::GET, &format!("/v1/tenants/{tb}/agents/{agent}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) =
        api.call(&key_b, M::GET, &format!("/v1/tenants/{tb}/conversations/{conv}/messages"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Every refusal is in A's audit trail, with the key that tried.
    let (_, _, after) = api
        .call(BOOTSTRAP, M::PATCH, &format!("/v1/tenants/{ta}/settings"), Some(json!({"agent_name": "Ava"})))
        .await;
    let (s, _, _) = api.call(BOOTSTRAP, M::GET, &format!("/v1/tenants/{ta}/audit?limit=201"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "pages hold 1 to 200");
    // Every page is reachable through its cursor.
    let (mut denials, mut pages, mut cursor) = (0, 0, String::new());
    loop {
        let (s, page) =
            api.get_at(BOOTSTRAP, &format!("/v1/tenants/{ta}/audit?limit=7{cursor}"), after.unwrap()).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        denials += page["items"].as_array().unwrap().iter().filter(|e| e["outcome"] == "denied").count();
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(denials, a_paths.len());
    assert!(pages > 2);
    let (_, settings) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/settings"), after.unwrap()).await;
    assert_eq!(settings["agent_name"], "Ava");
    // The export holds the whole log up to now, and verifies offline.
    let res = api
        .client
        .get(format!("{}/v1/tenants/{ta}/export", api.base))
        .bearer_auth(&key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let bytes = res.bytes().await.unwrap();
    let summary = tenantry_store::export::verify(&bytes[..], |_, _| Ok(())).unwrap();
    // The operator's pages of the audit trail are one `data.read` record in the log.
    assert_eq!(summary.head_position, after.unwrap() + 1);
    assert_eq!(summary.events, after.unwrap() + 1);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("helpdesk"));
    let audit_reads = format!("\"action\":\"GET /v1/tenants/{ta}/audit\"");
    let read_records =
        text.lines().filter(|l| l.contains("\"data.read\"") && l.contains(&audit_reads)).count();
    assert_eq!(read_records, 1, "a listing read page by page is one record");
    let (_, listed, _) = api.call(&key_b, M::GET, "/v1/tenants", None).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "a tenant key lists its own tenant only");

    // Bad credentials and bad input.
    let (s, problem, _) = api.call("nope", M::GET, &format!("/v1/tenants/{ta}"), None).await;
    assert_eq!((s, problem["status"].as_u64()), (StatusCode::UNAUTHORIZED, Some(401)));
    let (s, _, _) = api.send(api.client.get(format!("{}/v1/tenants", api.base))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = api
        .call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/agents"),
            Some(json!({"name": "x", "model": "m", "tenant_id": tb})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields, tenant_id never from a body");
    let (s, _, _) = api
        .call(&key_a, M::POST, &format!("/v1/tenants/{ta}/agents"), Some(json!({"name": 5, "model": "m"})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = api
        .send(
            api.client
                .post(format!("{}/v1/tenants/{ta}/agents", api.base))
                .bearer_auth(&key_a)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = api.call(&key_a, M::GET, "/v1/tenants/not-a-uuid/agents", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The server answers 413 as soon as it sees the length, and may close the connection
    // while the client is still sending: a try that ends before the answer is repeated.
    let huge = json!({"role": "user", "content": "x".repeat(1_100_000)}).to_string();
    let url = format!("{}/v1/tenants/{ta}/conversations/{conv}/messages", api.base);
    let mut answered = None;
    for _ in 0..5 {
        // `Connection: close`: the server stops reading at the length, so this connection
        // must not go back to the client's pool for the next request.
        let req = api
            .client
            .post(&url)
            .bearer_auth(&key_a)
            .header("content-type", "application/json")
            .header("connection", "close")
            .body(huge.clone());
        if let Ok(res) = req.send().await {
            answered = Some(res.status());
            break;
        }
    }
    assert_eq!(answered, Some(StatusCode::PAYLOAD_TOO_LARGE));
    let (s, _, _) = api
        .call(&key_a, M::POST, &format!("/v1/tenants/{ta}/agents"), Some(json!({"name": "", "model": "m"})))
        .await;
    assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::TOO_MANY_REQUESTS, "{s}");
    let (s, _, _) =
        api.call(&key_a, M::GET, &format!("/v1/tenants/{ta}/conversations?limit=abc"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = api.call(&key_a, M::DELETE, &format!("/v1/tenants/{ta}"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only the platform operator purges a tenant");

    // Suspension stops the tenant's commands; resuming restores them.
    let (s, _, _) = api
        .call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{ta}/suspend"), Some(json!({"reason": "unpaid"})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = api
        .call(&key_a, M::POST, &format!("/v1/tenants/{ta}/conversations"), Some(json!({"agent_id": agent})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = api.call(&key_a, M::POST, &format!("/v1/tenants/{ta}/resume"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only the platform resumes");
    api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{ta}/resume"), None).await;

    // Metrics name routes, never tenant ids.
    let metrics = api.client.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tenantry_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/tenants/{tenant_id}/agents\""));
    assert!(metrics.contains("tenantry_projection_lag_events{projector=\"directory\"}"));
    assert!(metrics.contains("tenantry_events_appended_total"), "{metrics}");
    assert!(!metrics.contains(&ta), "tenant ids stay out of metrics");
    let (s, _, _) = api.call(BOOTSTRAP, M::GET, "/readyz", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, spec, _) = api.call(BOOTSTRAP, M::GET, "/openapi.json", None).await;
    assert!(spec["paths"]["/v1/tenants/{tenant_id}/agents"]["post"].is_object(), "{spec}");
    assert_eq!(s, StatusCode::OK);

    // Revocation is effective before the answer.
    let key_user_id = ku["id"].as_str().unwrap();
    let (s, _, _) =
        api.call(&key_a, M::DELETE, &format!("/v1/tenants/{ta}/api-keys/{key_user_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = api.call(&key_user, M::GET, &format!("/v1/tenants/{ta}/agents"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A wrong secret for a real key id does not authenticate.
    let forged = format!("{}{}", &key_a[..key_a.len() - 4], "0000");
    let (s, _, _) = api.call(&forged, M::GET, &format!("/v1/tenants/{ta}/agents"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_works_and_tenants_stay_apart_on_sqlite() {
    walkthrough(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_works_and_tenants_stay_apart_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    walkthrough(Api::start(Some(h.url.clone())).await).await;
}
