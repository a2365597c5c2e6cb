//! Sign-in, sign-out and the session: the credential, who it is, a CSRF token and an expiry,
//! in one encrypted and authenticated cookie (`PrivateCookieJar`: AES-256-GCM under a key
//! derived from the master key, so every process of a deployment reads it).

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar, SameSite};
use chrono::Utc;
use maud::html;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::client::{Failure, Peer};
use super::{ConsoleState, views};

const SESSION: &str = "tenantry_console";
/// The sign-in form's own CSRF token (there is no session yet to hold one).
const SIGN_IN: &str = "tenantry_console_sign_in";
/// How long a session lasts at most; a credential that expires sooner ends it sooner.
pub const SESSION_SECONDS: i64 = 8 * 3600;

/// A signed-in user of the console.
#[derive(Debug, Clone)]
pub struct Session {
    /// The key or token signed in with: every page calls the API with it.
    pub credential: String,
    /// `super_admin`, `partner_admin` or `admin`.
    pub role: String,
    pub tenant_id: Option<String>,
    pub partner_id: Option<String>,
    /// Every form carries it; a form without it changes nothing.
    pub csrf: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// The browser's address, handed on to the API.
    pub peer: Option<Peer>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    credential: String,
    role: String,
    tenant_id: Option<String>,
    partner_id: Option<String>,
    csrf: String,
    expires_at: i64,
}

impl Session {
    pub fn is_operator(&self) -> bool {
        self.role == "super_admin"
    }

    pub fn is_partner_admin(&self) -> bool {
        self.role == "partner_admin"
    }

    /// `Ok` when a submitted form carries this session's CSRF token.
    pub fn check(&self, token: &str) -> Result<(), Failure> {
        if !token.is_empty() && token == self.csrf {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from the console; reload the page and try again.",
            ))
        }
    }

    /// Where the console starts for this role.
    pub fn home(&self) -> String {
        match (&self.tenant_id, self.role.as_str()) {
            (Some(tenant), _) => format!("/console/t/{tenant}"),
            (None, _) => "/console/tenants".into(),
        }
    }
}

/// Why a request has no session: the sign-in page.
#[derive(Debug)]
pub struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/console/sign-in").into_response()
    }
}

impl<S> FromRequestParts<S> for Session
where
    Key: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        <Self as OptionalFromRequestParts<S>>::from_request_parts(parts, state).await?.ok_or(SignInFirst)
    }
}

impl<S> OptionalFromRequestParts<S> for Session
where
    Key: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let jar = PrivateCookieJar::<Key>::from_headers(&parts.headers, Key::from_ref(state));
        let Some(stored) = jar.get(SESSION).and_then(|c| serde_json::from_str::<Stored>(c.value()).ok())
        else {
            return Ok(None);
        };
        if stored.expires_at <= Utc::now().timestamp() {
            return Ok(None);
        }
        Ok(Some(Session {
            credential: stored.credential,
            role: stored.role,
            tenant_id: stored.tenant_id,
            partner_id: stored.partner_id,
            csrf: stored.csrf,
            expires_at: stored.expires_at,
            peer: parts.extensions.get::<Peer>().copied(),
        }))
    }
}

pub fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/home", get(home))
}

fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Secure cookies when the browser reached us over TLS (a proxy in front says so).
fn over_tls(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn cookie(name: &'static str, value: String, max_age: i64, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/console")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
}

async fn home(session: Option<Session>) -> Redirect {
    match session {
        Some(s) => Redirect::to(&s.home()),
        None => Redirect::to("/console/sign-in"),
    }
}

#[derive(Debug, Deserialize)]
struct SignInQuery {
    expired: Option<String>,
}

async fn sign_in_page(
    jar: PrivateCookieJar,
    headers: axum::http::HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Response {
    let note = query.expired.map(|_| "Your session ended or its credential stopped working; sign in again.");
    sign_in_form(jar, &headers, StatusCode::OK, note)
}

fn sign_in_form(
    jar: PrivateCookieJar,
    headers: &axum::http::HeaderMap,
    status: StatusCode,
    note: Option<&str>,
) -> Response {
    let csrf = token();
    let jar = jar.add(cookie(SIGN_IN, csrf.clone(), 3600, over_tls(headers)));
    let body = html! {
        @if let Some(note) = note { p.notice role="alert" { (note) } }
        form.card method="post" action="/console/sign-in" {
            input type="hidden" name="csrf" value=(csrf);
            label for="credential" { "API key or token" }
            input #credential type="password" name="credential" required autocomplete="off" autofocus;
            p.hint { "An operator key, a partner admin's key, or a tenant admin's key or identity-provider token. The console can do what the credential can, nothing more." }
            button type="submit" { "Sign in" }
        }
    };
    (status, jar, views::page(None, "Sign in to tenantry", body)).into_response()
}

#[derive(Debug, Deserialize)]
struct SignIn {
    credential: String,
    #[serde(default)]
    csrf: String,
}

async fn sign_in(
    State(state): State<ConsoleState>,
    jar: PrivateCookieJar,
    headers: axum::http::HeaderMap,
    peer: Option<axum::Extension<Peer>>,
    Form(form): Form<SignIn>,
) -> Response {
    let expected = jar.get(SIGN_IN).map(|c| c.value().to_owned());
    if form.csrf.is_empty() || expected.as_deref() != Some(form.csrf.as_str()) {
        return sign_in_form(
            jar,
            &headers,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired; try again."),
        );
    }
    let credential = form.credential.trim().to_owned();
    let me = match state.api.me(&credential, peer.map(|p| p.0)).await {
        Ok(me) => me,
        Err(f) if f.status == StatusCode::UNAUTHORIZED || f.status == StatusCode::FORBIDDEN => {
            return sign_in_form(
                jar,
                &headers,
                StatusCode::UNAUTHORIZED,
                Some("That key or token is not valid."),
            );
        }
        Err(f) => return f.into_response(),
    };
    let role = me["role"].as_str().unwrap_or_default().to_owned();
    if !matches!(role.as_str(), "super_admin" | "partner_admin" | "admin") {
        return sign_in_form(
            jar,
            &headers,
            StatusCode::FORBIDDEN,
            Some(
                "The console is for operators, partner admins and tenant admins; this credential is a user's.",
            ),
        );
    }
    let now = Utc::now().timestamp();
    let credential_ends = me["expires_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp());
    let expires_at = credential_ends.map_or(now + SESSION_SECONDS, |end| end.min(now + SESSION_SECONDS));
    let stored = Stored {
        credential,
        role,
        tenant_id: me["tenant_id"].as_str().map(str::to_owned),
        partner_id: me["partner_id"].as_str().map(str::to_owned),
        csrf: token(),
        expires_at,
    };
    let home = Session {
        credential: String::new(),
        role: stored.role.clone(),
        tenant_id: stored.tenant_id.clone(),
        partner_id: stored.partner_id.clone(),
        csrf: String::new(),
        expires_at,
        peer: None,
    }
    .home();
    let value = serde_json::to_string(&stored).unwrap_or_default();
    let jar = jar.remove(Cookie::build(SIGN_IN).path("/console")).add(cookie(
        SESSION,
        value,
        expires_at - now,
        over_tls(&headers),
    ));
    (jar, Redirect::to(&home)).into_response()
}

#[derive(Debug, Deserialize)]
struct SignOut {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(session: Session, jar: PrivateCookieJar, Form(form): Form<SignOut>) -> Response {
    if let Err(f) = session.check(&form.csrf) {
        return f.into_response();
    }
    (jar.remove(Cookie::build(SESSION).path("/console")), Redirect::to("/console/sign-in")).into_response()
}
