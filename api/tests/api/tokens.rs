//! Tokens (JWTs) of the customers' identity providers: signed here with keys made in the
//! test, their JWKS served by the test on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

const ISSUER: &str = "https://id.test";
const HS_ISSUER: &str = "https://hs.test";
const AUDIENCE: &str = "tenantry";
const HS_SECRET: &str = "a-shared-secret-of-more-than-thirty-two-bytes";

/// A signing key and its public half as a JWK.
struct SigningKey {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

fn rsa_key(kid: &str) -> SigningKey {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let key = EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes());
    signing(Algorithm::RS256, kid, key)
}

fn ec_key(kid: &str) -> SigningKey {
    use p256::pkcs8::EncodePrivateKey;
    let private = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let key = EncodingKey::from_ec_der(private.to_pkcs8_der().unwrap().as_bytes());
    signing(Algorithm::ES256, kid, key)
}

fn ed_key(kid: &str) -> SigningKey {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let private = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let key = EncodingKey::from_ed_der(private.to_pkcs8_der().unwrap().as_bytes());
    // jsonwebtoken does not derive an OKP JWK; it is three fields.
    let x = B64.encode(private.verifying_key().as_bytes());
    let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig" });
    SigningKey { alg: Algorithm::EdDSA, kid: kid.into(), key, jwk }
}

fn signing(alg: Algorithm, kid: &str, key: EncodingKey) -> SigningKey {
    let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    SigningKey { alg, kid: kid.into(), key, jwk: serde_json::to_value(jwk).unwrap() }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims of a token for `sub` in `tenant` (an id or slug) with `roles`, valid for an hour.
fn claims(sub: &str, tenant: &str, roles: &[&str]) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "tenant_id": tenant, "roles": roles,
        "email": format!("{sub}@example.com"), "exp": now() + 3600, "iat": now(),
    })
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.key).unwrap()
}

/// The provider's JWKS endpoint: the keys it publishes, and how often it was asked.
#[derive(Clone, Default)]
struct Provider {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl Provider {
    fn publish(&self, key: &SigningKey) {
        self.keys.lock().unwrap().push(key.jwk.clone());
    }

    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let me = self.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let me = me.clone();
                async move {
                    me.fetches.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({ "keys": *me.keys.lock().unwrap() }))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }
}

/// A server trusting the provider at `jwks_url`, and an HS256 issuer.
async fn server(database_url: Option<String>, jwks_url: &str) -> Api {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hs.secret"), HS_SECRET).unwrap();
    let config = json!({ "issuers": [
        { "issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks_url },
        { "issuer": HS_ISSUER, "audience": AUDIENCE, "hs256_secret_file": "hs.secret", "tenant_claim": "org" },
    ] });
    let path = dir.path().join("oidc.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut settings = crate::support::server_settings(dir.path(), database_url, None);
    settings.oidc_config = Some(path);
    Api::serve(&settings, dir).await
}

async fn identity_providers_sign_users_in(database_url: Option<String>) {
    let provider = Provider::default();
    let (rsa, ec, ed) = (rsa_key("r1"), ec_key("e1"), ed_key("d1"));
    for key in [&rsa, &ec, &ed] {
        provider.publish(key);
    }
    let api = server(database_url, &provider.serve().await).await;
    let (acme, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "acme", "name": "Acme"})).await;
    let acme_id = acme["id"].as_str().unwrap().to_owned();
    let (globex, _) = api
        .create(BOOTSTRAP, "/v1/tenants", json!({"slug": "globex", "name": "G", "limits": {"max_users": 1}}))
        .await;
    let globex_id = globex["id"].as_str().unwrap().to_owned();

    // The first token of a subject provisions its user; later ones, by any key and by id or
    // slug, are the same user.
    let alice = sign(&rsa, &claims("alice", &acme_id, &["user"]));
    let (s, me, _) = api.call(&alice, M::GET, "/v1/me", None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!((me["role"].as_str(), me["tenant_id"].as_str()), (Some("user"), Some(acme_id.as_str())));
    assert_eq!(me["credential"], "token");
    assert!(me["expires_at"].is_string());
    let alice_id = me["user_id"].as_str().unwrap().to_owned();
    for token in [sign(&ec, &claims("alice", &acme_id, &[])), sign(&ed, &claims("alice", "acme", &["user"]))]
    {
        let (s, again, _) = api.call(&token, M::GET, "/v1/me", None).await;
        assert_eq!((s, again["user_id"].as_str()), (StatusCode::OK, Some(alice_id.as_str())), "{again}");
    }
    // An admin of the provider administers; a user does not.
    let bob = sign(&ec, &claims("bob", &acme_id, &["admin", "auditor"]));
    let users = format!("/v1/tenants/{acme_id}/users");
    let (s, listed, _) = api.call(&bob, M::GET, &users, None).await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    let listed = listed["items"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "one user per subject: {listed:?}");
    let shown = listed.iter().find(|u| u["id"] == json!(alice_id)).unwrap();
    assert_eq!(
        (shown["email"].as_str(), shown["issuer"].as_str()),
        (Some("alice@example.com"), Some(ISSUER))
    );
    assert_eq!(api.call(&alice, M::GET, &users, None).await.0, StatusCode::FORBIDDEN);
    // A user's token acts as that user: their conversations are theirs.
    let (agent, _) =
        api.create(&bob, &format!("/v1/tenants/{acme_id}/agents"), json!({"name": "a", "model": "m"})).await;
    let (conv, _) = api
        .create(&alice, &format!("/v1/tenants/{acme_id}/conversations"), json!({"agent_id": agent["id"]}))
        .await;
    assert_eq!(conv["user_id"], json!(alice_id));
    // A token reaches its own tenant only.
    let (s, _, _) = api.call(&bob, M::GET, &format!("/v1/tenants/{globex_id}/users"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Whatever is wrong with a token, it is 401.
    let mut tampered = sign(&rsa, &claims("mallory", &acme_id, &["admin"]));
    let payload = tampered.split('.').nth(1).unwrap().to_owned();
    let forged = B64.encode(serde_json::to_vec(&claims("mallory", &globex_id, &["admin"])).unwrap());
    tampered = tampered.replace(&payload, &forged);
    let unsigned = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(serde_json::to_vec(&claims("mallory", &acme_id, &["admin"])).unwrap())
    );
    let with = |change: Value| {
        let mut c = claims("mallory", &acme_id, &["admin"]);
        c.as_object_mut().unwrap().extend(change.as_object().unwrap().clone());
        c
    };
    let hs_from_rsa_issuer = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("r1".into());
        jsonwebtoken::encode(&header, &with(json!({})), &EncodingKey::from_secret(HS_SECRET.as_bytes()))
            .unwrap()
    };
    for (why, token) in [
        ("expired", sign(&rsa, &with(json!({"exp": now() - 120})))),
        ("not yet valid", sign(&rsa, &with(json!({"nbf": now() + 300})))),
        ("wrong audience", sign(&rsa, &with(json!({"aud": "someone-else"})))),
        ("wrong issuer", sign(&rsa, &with(json!({"iss": "https://evil.test"})))),
        ("no tenant", sign(&rsa, &with(json!({"tenant_id": null})))),
        ("unknown tenant slug", sign(&rsa, &with(json!({"tenant_id": "nobody"})))),
        ("alg none", unsigned),
        ("tampered", tampered),
        ("HS256 from an issuer without a shared secret", hs_from_rsa_issuer),
    ] {
        let (s, body, _) = api.call(&token, M::GET, "/v1/me", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{why}: {body}");
    }
    let fetched = provider.fetches.load(Ordering::SeqCst);

    // The provider rotates: a token of a key it publishes since is taken after one read
    // of its JWKS; a key still unknown within the minute reads nothing more, and is 401.
    let rotated = rsa_key("r2");
    provider.publish(&rotated);
    let carol = sign(&rotated, &claims("carol", &acme_id, &["user"]));
    assert_eq!(api.call(&carol, M::GET, "/v1/me", None).await.0, StatusCode::OK);
    assert_eq!(provider.fetches.load(Ordering::SeqCst), fetched + 1);
    let other = ec_key("e9");
    provider.publish(&other);
    let dave = sign(&other, &claims("dave", &acme_id, &["user"]));
    assert_eq!(api.call(&dave, M::GET, "/v1/me", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(provider.fetches.load(Ordering::SeqCst), fetched + 1, "at most one read a minute");

    // HS256, where the issuer has a shared secret; its tenant claim is named `org`.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": HS_ISSUER, "aud": AUDIENCE, "sub": "erin", "org": "globex", "exp": now() + 60}),
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .unwrap();
    let (s, me, _) = api.call(&hs, M::GET, "/v1/me", None).await;
    assert_eq!((s, me["tenant_id"].as_str()), (StatusCode::OK, Some(globex_id.as_str())), "{me}");
    // Provisioning counts against max_users: globex holds one.
    let frank = sign(&rsa, &claims("frank", &globex_id, &["user"]));
    let (s, body, _) = api.call(&frank, M::GET, "/v1/me", None).await;
    assert_eq!((s, body["limit"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("max_users")), "{body}");

    // Removing a user stops their tokens, new ones included.
    let (s, _, _) = api.call(&bob, M::DELETE, &format!("{users}/{alice_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.call(&alice, M::GET, "/v1/me", None).await.0, StatusCode::UNAUTHORIZED);
    let fresh = sign(&ed, &claims("alice", &acme_id, &["user"]));
    assert_eq!(api.call(&fresh, M::GET, "/v1/me", None).await.0, StatusCode::UNAUTHORIZED);
    // A suspended tenant is closed to its tokens, as to its keys.
    let (s, _, _) = api
        .call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{acme_id}/suspend"), Some(json!({"reason": "t"})))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.call(&bob, M::GET, &users, None).await.0, StatusCode::FORBIDDEN);

    // Erasing a person stops their tokens too; a purged tenant's tokens open nothing.
    let (s, me, _) = api.call(&hs, M::GET, "/v1/me", None).await;
    assert_eq!(s, StatusCode::OK);
    let erin = me["user_id"].as_str().unwrap().to_owned();
    let (s, _, _) =
        api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{globex_id}/users/{erin}/erase"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.call(&hs, M::GET, "/v1/me", None).await.0, StatusCode::UNAUTHORIZED, "erased");
    let gina = sign(&rsa, &claims("gina", &acme_id, &["user"]));
    let (s, _, _) = api.call(BOOTSTRAP, M::DELETE, &format!("/v1/tenants/{acme_id}"), None).await;
    assert!(matches!(s, StatusCode::OK | StatusCode::ACCEPTED), "{s}");
    // The purge runs in the background (the token is refused meanwhile); once it has gone
    // far enough, the token opens nothing (401). A loaded machine may take seconds: the bound
    // is generous.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let status = api.call(&gina, M::GET, "/v1/me", None).await.0;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(status.is_client_error(), "while the purge runs: {status}");
        assert!(std::time::Instant::now() < deadline, "a purged tenant's token still opens");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_providers_sign_users_in_on_sqlite() {
    identity_providers_sign_users_in(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_providers_sign_users_in_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    identity_providers_sign_users_in(Some(h.url.clone())).await;
}

/// Without `--oidc-config`, a JWT is just a credential that does not authenticate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_issuers_a_token_is_refused() {
    let api = Api::start(None).await;
    let token = sign(&ed_key("d"), &claims("alice", &tenantry_domain::TenantId::new().to_string(), &[]));
    let (s, body, _) = api.call(&token, M::GET, "/v1/me", None).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
}
