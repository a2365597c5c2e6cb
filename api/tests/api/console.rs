//! The console without a browser: sign-in and its cookie, CSRF, escaping, the security
//! headers, another tenant's pages refused, the typed-slug confirmation; and the operators'
//! routes it draws on (`GET /v1/projections`, `POST /v1/projections/rebuild`, tenant search).
//! The browser tests (`.ci/console`) drive the same pages in Chromium.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method as M, StatusCode};
use serde_json::json;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// A browser as far as the console cares: cookies kept, redirects not followed.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    /// Headers sent with every request (a proxy's `X-Forwarded-Proto`, say).
    extra: Vec<(&'static str, &'static str)>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The CSRF token of the page's first form.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        self.body[at..].split('"').next().unwrap().to_owned()
    }

    fn location(&self) -> &str {
        self.headers.get(LOCATION).map_or("", |v| v.to_str().unwrap())
    }
}

impl Browser {
    fn new(api: &Api) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { base: api.base.clone(), http, cookies: BTreeMap::new(), extra: Vec::new() }
    }

    async fn send(&mut self, method: M, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", jar.join("; "));
        }
        for (k, v) in &self.extra {
            req = req.header(*k, *v);
        }
        if let Some(form) = form {
            req = req.form(form);
        }
        let res = req.send().await.unwrap();
        for set in res.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page { status: res.status(), headers: res.headers().clone(), body: res.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(M::GET, path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(M::POST, path, Some(form)).await
    }

    /// Signs in with `credential`; the answer to the sign-in form.
    async fn sign_in(&mut self, credential: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        let csrf = form.csrf();
        self.post("/console/sign-in", &[("credential", credential), ("csrf", &csrf)]).await
    }
}

async fn tenant_with_admin(api: &Api, slug: &str, name: &str) -> (String, String) {
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": slug, "name": name})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "admin", "role": "admin"}))
        .await;
    (t, k["key"].as_str().unwrap().to_owned())
}

async fn signing_in_sets_a_locked_down_session_cookie(api: Api) {
    let mut browser = Browser::new(&api);
    // No session: every page sends the browser to sign in.
    let page = browser.get("/console/tenants").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/console/sign-in"));

    // The sign-in form carries its own CSRF token; a post without it is refused.
    let page = browser.get("/console/sign-in").await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let forged = browser.post("/console/sign-in", &[("credential", BOOTSTRAP), ("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!browser.cookies.contains_key("tenantry_console"));

    // A wrong key is 401 on the form; a user's key is not for the console.
    let page = browser.sign_in("not-a-key").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let (t, admin) = tenant_with_admin(&api, "console-a", "A").await;
    let (u, _) = api
        .create(&admin, &format!("/v1/tenants/{t}/users"), json!({"email": "u@a.io", "role": "user"}))
        .await;
    let (k, _) = api
        .create(
            &admin,
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "u", "role": "user", "user_id": u["id"]}),
        )
        .await;
    let page = browser.sign_in(k["key"].as_str().unwrap()).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);

    // The operator's sign-in: a session cookie that scripts cannot read, sent to the
    // console only, never cross-site, and that expires.
    let page = browser.sign_in(BOOTSTRAP).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/console/tenants"));
    let cookie = page
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("tenantry_console="));
    let cookie = cookie.expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP gets no Secure cookie: {cookie}");
    // The credential is not in the cookie in the clear.
    assert!(!cookie.contains(BOOTSTRAP));
    let page = browser.get("/console/tenants").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("console-a"));

    // A cookie changed by one byte is no session.
    let mut tampered = Browser::new(&api);
    let mut value = browser.cookies["tenantry_console"].clone().into_bytes();
    value[10] = if value[10] == b'A' { b'B' } else { b'A' };
    tampered.cookies.insert("tenantry_console".into(), String::from_utf8(value).unwrap());
    assert_eq!(tampered.get("/console/tenants").await.status, StatusCode::SEE_OTHER);

    // Behind TLS (a proxy says so) the cookie is Secure.
    let mut secure = Browser::new(&api);
    secure.extra.push(("x-forwarded-proto", "https"));
    let page = secure.sign_in(BOOTSTRAP).await;
    let cookie = page
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tenantry_console="));
    assert!(cookie.unwrap().contains("Secure"));

    // Signing out needs the token too; then the session is gone.
    let csrf = browser.get("/console/tenants").await.csrf();
    assert_eq!(browser.post("/console/sign-out", &[("csrf", "nope")]).await.status, StatusCode::FORBIDDEN);
    let page = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(browser.get("/console/tenants").await.status, StatusCode::SEE_OTHER);
}

async fn a_session_ends_with_its_credential(api: Api) {
    let (t, _) = tenant_with_admin(&api, "short", "Short").await;
    let expires = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc3339();
    let (k, _) = api
        .create(
            BOOTSTRAP,
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "brief", "role": "admin", "expires_at": expires}),
        )
        .await;
    let mut browser = Browser::new(&api);
    let page = browser.sign_in(k["key"].as_str().unwrap()).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, format!("/console/t/{t}").as_str()));
    let cookie = page
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tenantry_console="))
        .unwrap();
    let max_age: i64 = cookie.split("Max-Age=").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();
    assert!((1..=120).contains(&max_age), "the session outlives the key: {cookie}");

    // Revoked while signed in: the next page sends the browser back to sign in.
    let key_id = k["id"].as_str().unwrap();
    let (s, _, _) = api.call(BOOTSTRAP, M::DELETE, &format!("/v1/tenants/{t}/api-keys/{key_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    let page = browser.get(&format!("/console/t/{t}")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/console/sign-in"), "{}", page.location());
}

async fn names_holding_markup_are_shown_as_text(api: Api) {
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let (t, admin) = tenant_with_admin(&api, "markup", evil).await;
    api.create(
        &admin,
        &format!("/v1/tenants/{t}/agents"),
        json!({"name": evil, "model": "gpt-4o", "system_prompt": "hi"}),
    )
    .await;
    let mut browser = Browser::new(&api);
    browser.sign_in(BOOTSTRAP).await;
    for path in ["/console/tenants".to_owned(), format!("/console/t/{t}"), format!("/console/t/{t}/agents")] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains("<script>alert"), "{path} runs the name: {}", page.body);
        assert!(!page.body.contains("<img src=x"), "{path}");
        assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{path} does not show the name");
    }
}

async fn forms_without_the_token_change_nothing(api: Api) {
    let (t, admin) = tenant_with_admin(&api, "forms", "Forms").await;
    let mut browser = Browser::new(&api);
    browser.sign_in(&admin).await;
    let agents = format!("/console/t/{t}/agents");
    let page = browser.post(&agents, &[("name", "forged"), ("csrf", "wrong")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let csrf = browser.get(&agents).await.csrf();
    let page = browser
        .post(&agents, &[("name", "real"), ("csrf", &csrf), ("model", "gpt-4o"), ("system_prompt", "")])
        .await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, agents.as_str()), "{}", page.body);
    let (_, list, _) = api.call(&admin, M::GET, &format!("/v1/tenants/{t}/agents"), None).await;
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["real"]);
    // The API's refusal shows as a page with its status (a blank name is 422).
    let page = browser
        .post(&agents, &[("name", " "), ("csrf", &csrf), ("model", "gpt-4o"), ("system_prompt", "")])
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_tenant_admin_sees_only_its_own_tenant(api: Api) {
    let (a, admin_a) = tenant_with_admin(&api, "own-a", "Own A").await;
    let (b, _) = tenant_with_admin(&api, "own-b", "Own B").await;
    let mut browser = Browser::new(&api);
    let page = browser.sign_in(&admin_a).await;
    assert_eq!(page.location(), format!("/console/t/{a}"));
    for page in
        ["", "/agents", "/tools", "/users", "/keys", "/conversations", "/audit", "/settings", "/export"]
    {
        let own = browser.get(&format!("/console/t/{a}{page}")).await;
        assert_eq!(own.status, StatusCode::OK, "own {page}: {}", own.body);
        let other = browser.get(&format!("/console/t/{b}{page}")).await;
        assert_eq!(other.status, StatusCode::FORBIDDEN, "other {page}");
        assert!(!other.body.contains("own-b"), "{page} shows the other tenant");
    }
    // Forms against the other tenant are refused too, and the platform's pages are not theirs.
    let csrf = browser.get(&format!("/console/t/{a}/agents")).await.csrf();
    let page = browser.post(&format!("/console/t/{b}/agents"), &[("name", "x"), ("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/console/projections").await.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/console/operators").await.status, StatusCode::FORBIDDEN);
    // The tenants page takes a tenant admin home.
    assert_eq!(browser.get("/console/tenants").await.location(), format!("/console/t/{a}"));
}

async fn dangerous_actions_need_the_slug_typed_in(api: Api) {
    let (t, _) = tenant_with_admin(&api, "doomed", "Doomed").await;
    let mut browser = Browser::new(&api);
    browser.sign_in(BOOTSTRAP).await;
    let overview = browser.get(&format!("/console/t/{t}")).await;
    let csrf = overview.csrf();
    for action in ["purge", "suspend"] {
        let page =
            browser.post(&format!("/console/t/{t}/{action}"), &[("csrf", &csrf), ("confirm", "doome")]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{action}");
    }
    let (s, got, _) = api.call(BOOTSTRAP, M::GET, &format!("/v1/tenants/{t}"), None).await;
    assert_eq!((s, got["status"].as_str()), (StatusCode::OK, Some("active")));

    let page =
        browser.post(&format!("/console/t/{t}/suspend"), &[("csrf", &csrf), ("confirm", "doomed")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (_, got, _) = api.call(BOOTSTRAP, M::GET, &format!("/v1/tenants/{t}"), None).await;
    assert_eq!(got["status"], "suspended");
    let page =
        browser.post(&format!("/console/t/{t}/purge"), &[("csrf", &csrf), ("confirm", "doomed")]).await;
    assert_eq!(page.status, StatusCode::ACCEPTED, "{}", page.body);
}

async fn keys_are_issued_once_and_revoked(api: Api) {
    let (t, _) = tenant_with_admin(&api, "keys-page", "Keys").await;
    let mut browser = Browser::new(&api);
    browser.sign_in(BOOTSTRAP).await;
    let keys = format!("/console/t/{t}/keys");
    let csrf = browser.get(&keys).await.csrf();
    let page =
        browser.post(&keys, &[("csrf", &csrf), ("name", "ci"), ("role", "admin"), ("user_id", "")]).await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let at = page.body.find("data-secret>").unwrap() + 12;
    let secret = page.body[at..].split('<').next().unwrap().to_owned();
    let (s, me, _) = api.call(&secret, M::GET, "/v1/me", None).await;
    assert_eq!((s, me["tenant_id"].as_str()), (StatusCode::OK, Some(t.as_str())));
    // Listed afterwards without the secret.
    let list = browser.get(&keys).await;
    assert!(list.body.contains("ci") && !list.body.contains(&secret));
    let key_id = me["key_id"].as_str().unwrap();
    let page = browser.post(&format!("{keys}/{key_id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (s, _, _) = api.call(&secret, M::GET, "/v1/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

async fn operators_see_and_rebuild_read_models(api: Api) {
    let (t, admin) = tenant_with_admin(&api, "rebuilt", "Rebuilt").await;
    let (s, status, _) = api.call(BOOTSTRAP, M::GET, "/v1/projections", None).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> =
        status["items"].as_array().unwrap().iter().map(|p| p["projector"].as_str().unwrap()).collect();
    assert!(names.contains(&"directory") && names.contains(&"audit_log"), "{status}");
    let (s, _, _) = api.call(&admin, M::GET, "/v1/projections", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let rebuild =
        |body: serde_json::Value| api.call(BOOTSTRAP, M::POST, "/v1/projections/rebuild", Some(body));
    let (s, done, _) = rebuild(json!({"tenant_id": t})).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert!(done["events"].as_u64().unwrap() >= 2, "{done}");
    let (s, p, _) = rebuild(json!({"tenant_id": t, "projection": "nope"})).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("projection")));
    let (s, _, _) = rebuild(json!({"tenant_id": uuid::Uuid::now_v7()})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = api.call(&admin, M::POST, "/v1/projections/rebuild", Some(json!({"tenant_id": t}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Read models still answer as before the rebuild.
    let (s, got, _) = api.call(&admin, M::GET, &format!("/v1/tenants/{t}"), None).await;
    assert_eq!((s, got["slug"].as_str()), (StatusCode::OK, Some("rebuilt")));
}

async fn tenants_are_found_by_slug_or_name(api: Api) {
    for (slug, name) in [("acme-eu", "Acme Europe"), ("acme-us", "Acme US"), ("globex", "Globex 100%_off")] {
        api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": slug, "name": name})).await;
    }
    let found = |q: &'static str| {
        let api = &api;
        async move {
            let (s, page, _) = api.call(BOOTSTRAP, M::GET, &format!("/v1/tenants?q={q}"), None).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            let mut slugs: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["slug"].as_str().unwrap().to_owned())
                .collect();
            slugs.sort();
            slugs
        }
    };
    assert_eq!(found("acme").await, ["acme-eu", "acme-us"]);
    assert_eq!(found("EUROPE").await, ["acme-eu"]);
    // `%` and `_` are themselves, not wildcards.
    assert_eq!(found("100%25_").await, ["globex"]);
    assert_eq!(found("%25").await, ["globex"]);
    assert!(found("a_m").await.is_empty());
    let (s, _, _) = api.call(BOOTSTRAP, M::GET, &format!("/v1/tenants?q={}", "x".repeat(101)), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn partner_admins_see_their_fleet_only(api: Api) {
    let (_, p, _) = api.call(BOOTSTRAP, M::POST, "/v1/partners", Some(json!({"name": "Fleet Co"}))).await;
    let (partner, partner_key) =
        (p["id"].as_str().unwrap().to_owned(), p["key"].as_str().unwrap().to_owned());
    let (_, other, _) = api.call(BOOTSTRAP, M::POST, "/v1/partners", Some(json!({"name": "Rival Co"}))).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (s, mine, _) = api
        .call(&partner_key, M::POST, "/v1/tenants", Some(json!({"slug": "fleet-one", "name": "One"})))
        .await;
    assert!(s.is_success(), "{mine}");
    let mine = mine["id"].as_str().unwrap().to_owned();
    let (outside, _) = tenant_with_admin(&api, "not-in-fleet", "Outside").await;

    let mut browser = Browser::new(&api);
    let page = browser.sign_in(&partner_key).await;
    assert_eq!(page.location(), "/console/tenants");
    let list = browser.get("/console/tenants").await;
    assert!(list.body.contains("fleet-one") && !list.body.contains("not-in-fleet"), "{}", list.body);
    let fleet = browser.get("/console/fleet").await;
    assert_eq!(fleet.status, StatusCode::OK, "{}", fleet.body);
    assert!(fleet.body.contains("Fleet usage"));
    // Another partner's fleet is not found, as the API answers it.
    let rival = browser.get(&format!("/console/fleet?partner={other}")).await;
    assert_eq!(rival.status, StatusCode::NOT_FOUND);
    assert!(!rival.body.contains("Rival Co"));
    assert_eq!(browser.get(&format!("/console/t/{mine}")).await.status, StatusCode::OK);
    assert_eq!(browser.get(&format!("/console/t/{outside}")).await.status, StatusCode::FORBIDDEN);
    // Tenants it creates from the console are its partner's.
    let csrf = list.csrf();
    let page = browser
        .post(
            "/console/tenants",
            &[("csrf", &csrf), ("slug", "fleet-two"), ("name", "Two"), ("plan", "starter")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let id = page.location().rsplit('/').next().unwrap().to_owned();
    let (_, got, _) = api.call(BOOTSTRAP, M::GET, &format!("/v1/tenants/{id}"), None).await;
    assert_eq!(got["partner_id"].as_str(), Some(partner.as_str()), "{got}");
}

async fn settings_export_and_erasure_go_through_the_api(api: Api) {
    let (t, admin) = tenant_with_admin(&api, "settled", "Settled").await;
    let (u, _) = api
        .create(
            &admin,
            &format!("/v1/tenants/{t}/users"),
            json!({"email": "gone@settled.io", "role": "user"}),
        )
        .await;
    let user = u["id"].as_str().unwrap().to_owned();
    let mut browser = Browser::new(&api);
    browser.sign_in(&admin).await;

    // The settings editor saves a JSON patch; a body that is no object is 422 and saves nothing.
    let path = format!("/console/t/{t}/settings");
    let csrf = browser.get(&path).await.csrf();
    let bad = browser.post(&path, &[("csrf", &csrf), ("settings", "[1]")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = browser
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("settings", r#"{"agent_name": "Ada", "custom": {"default_language": "fr"}}"#),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let (_, settings, _) = api.call(&admin, M::GET, &format!("/v1/tenants/{t}/settings"), None).await;
    assert_eq!(
        (settings["agent_name"].as_str(), settings["custom"]["default_language"].as_str()),
        (Some("Ada"), Some("fr")),
        "{settings}"
    );
    // The API's own refusal (an unknown field) is shown with its status.
    let page = browser.post(&path, &[("csrf", &csrf), ("settings", r#"{"colour": "red"}"#)]).await;
    assert!(page.status.is_client_error(), "{}", page.status);

    // The export downloads as the API makes it.
    let export = browser.get(&format!("/console/t/{t}/export")).await;
    assert_eq!(export.status, StatusCode::OK);
    assert!(export.headers["content-disposition"].to_str().unwrap().contains("settled-export.jsonl"));
    assert!(
        export.body.lines().count() >= 3 && export.body.contains("\"type\":\"apikey.issued\""),
        "{}",
        export.body
    );

    // Erasure asks for the slug; with it, the person reads as erased.
    let users = format!("/console/t/{t}/users");
    let csrf = browser.get(&users).await.csrf();
    let page = browser
        .post(&format!("{users}/erase"), &[("csrf", &csrf), ("user_id", &user), ("confirm", "nope")])
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = browser
        .post(&format!("{users}/erase"), &[("csrf", &csrf), ("user_id", &user), ("confirm", "settled")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (_, got) = api.get_at(&admin, &format!("/v1/tenants/{t}/users/{user}"), 0).await;
    assert_ne!(got["email"], "gone@settled.io", "{got}");
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Api::start(None).await).await; })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(h) = super::Harness::postgres().await else { return };
                super::$name(super::Api::start(Some(h.url.clone())).await).await;
            })*
        }
    };
}

on_both!(
    signing_in_sets_a_locked_down_session_cookie,
    a_session_ends_with_its_credential,
    names_holding_markup_are_shown_as_text,
    forms_without_the_token_change_nothing,
    a_tenant_admin_sees_only_its_own_tenant,
    dangerous_actions_need_the_slug_typed_in,
    keys_are_issued_once_and_revoked,
    operators_see_and_rebuild_read_models,
    tenants_are_found_by_slug_or_name,
    partner_admins_see_their_fleet_only,
    settings_export_and_erasure_go_through_the_api,
);
