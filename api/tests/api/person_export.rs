//! A person's own export (GDPR articles 15 and 20): `GET …/users/{id}/export` holds their
//! profile, the conversations they opened with every message, and what they did, and nothing
//! of another person; it verifies offline like a tenant's export, and an edit breaks it; the
//! admins and the person may ask for it, nobody else; an erased person exports as `[erased]`.

use reqwest::{Method as M, StatusCode};
use serde_json::json;
use tenantry_store::export::{VerifyError, verify};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

async fn export(api: &Api, key: &str, path: &str) -> (StatusCode, String) {
    let res = api.client.get(format!("{}{path}", api.base)).bearer_auth(key).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

async fn a_person_exports_their_own_data(api: Api) {
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "gdpr", "name": "GDPR"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let admin = k["key"].as_str().unwrap().to_owned();
    let (agent, _) =
        api.create(&admin, &format!("/v1/tenants/{t}/agents"), json!({"name": "bot", "model": "m-1"})).await;
    let mut people = Vec::new();
    for email in ["pat@gdpr.example", "quinn@gdpr.example"] {
        let (u, _) = api
            .create(&admin, &format!("/v1/tenants/{t}/users"), json!({"email": email, "role": "user"}))
            .await;
        let id = u["id"].as_str().unwrap().to_owned();
        let (k, _) = api
            .create(
                &admin,
                &format!("/v1/tenants/{t}/api-keys"),
                json!({"name": "their key", "role": "user", "user_id": id}),
            )
            .await;
        let key = k["key"].as_str().unwrap().to_owned();
        let (c, _) = api
            .create(
                &key,
                &format!("/v1/tenants/{t}/conversations"),
                json!({"agent_id": agent["id"], "title": format!("{email} asks")}),
            )
            .await;
        let conv = c["id"].as_str().unwrap().to_owned();
        for (role, content) in
            [("user", format!("question from {email}")), ("assistant", format!("answer {}", &email[..3]))]
        {
            let (s, body, _) = api
                .call(&key, M::POST, &format!("/v1/tenants/{t}/conversations/{conv}/messages"), Some(json!({"role": role, "content": content, "model": "m-1", "usage": {"prompt_tokens": 10, "completion_tokens": 5}})))
                .await;
            assert!(s.is_success(), "{body}");
        }
        people.push((id, key));
    }
    let (pat, pat_key) = people[0].clone();
    let (_, quinn_key) = people[1].clone();
    let path = format!("/v1/tenants/{t}/users/{pat}/export");

    let (s, text) = export(&api, &admin, &path).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let summary = verify(text.as_bytes(), |_, _| Ok(())).expect("the person's export verifies");
    assert!(text.lines().next().unwrap().contains(&format!("\"subject\":\"{pat}\"")));
    for held in ["pat@gdpr.example", "pat@gdpr.example asks", "question from pat@gdpr.example", "answer pat"]
    {
        assert!(text.contains(held), "missing {held}: {text}");
    }
    for other in ["quinn@gdpr.example", "question from quinn", "answer qui"] {
        assert!(!text.contains(other), "another person's data: {other}");
    }
    // Their usage and what they did (their key's actions) are there; positions increase.
    assert!(text.contains("\"usage.recorded\"") || text.contains("\"usage\""), "{text}");
    let positions: Vec<u64> = text
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|l| l["position"].as_u64())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]) && positions.len() as u64 == summary.events);
    assert!(summary.events >= 6 && summary.events < summary.head_position, "{summary:?}");

    // An edit or a line taken out is found.
    let lines: Vec<&str> = text.lines().collect();
    let edited = text.replacen("question from pat", "question from pam", 1);
    assert!(matches!(verify(edited.as_bytes(), |_, _| Ok(())), Err(VerifyError::Edited { .. })));
    let dropped: String =
        lines.iter().enumerate().filter(|(i, _)| *i != 3).map(|(_, l)| format!("{l}\n")).collect();
    assert!(verify(dropped.as_bytes(), |_, _| Ok(())).is_err());

    // The person themself may ask; another person, another tenant's admin may not.
    let (s, own) = export(&api, &pat_key, &path).await;
    assert_eq!(s, StatusCode::OK);
    assert!(verify(own.as_bytes(), |_, _| Ok(())).is_ok());
    assert_eq!(export(&api, &quinn_key, &path).await.0, StatusCode::FORBIDDEN);
    let (o, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "other-gdpr", "name": "Other"})).await;
    let (ok, _) = api
        .create(
            BOOTSTRAP,
            &format!("/v1/tenants/{}/api-keys", o["id"].as_str().unwrap()),
            json!({"name": "o", "role": "admin"}),
        )
        .await;
    let (s, body) = export(&api, ok["key"].as_str().unwrap(), &path).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(!body.contains("pat@"));

    // Erased: the same export reads `[erased]` where their data was.
    let (s, _, _) = api.call(&admin, M::POST, &format!("/v1/tenants/{t}/users/{pat}/erase"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, erased) = export(&api, &admin, &path).await;
    assert_eq!(s, StatusCode::OK);
    assert!(verify(erased.as_bytes(), |_, _| Ok(())).is_ok());
    assert!(!erased.contains("pat@gdpr.example") && !erased.contains("question from pat"), "{erased}");
    assert!(erased.contains("[erased]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_exports_their_own_data_on_sqlite() {
    a_person_exports_their_own_data(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_exports_their_own_data_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    a_person_exports_their_own_data(Api::start(Some(h.url.clone())).await).await;
}
