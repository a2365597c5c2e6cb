//! Calls of the JSON API for a session: the same router, layers and checks as a request from
//! outside, with the session's credential and the browser's address.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use tower::ServiceExt;

use super::session::Session;

/// The browser's address as the server saw it.
pub type Peer = axum::extract::ConnectInfo<std::net::SocketAddr>;

/// Answers larger than this are not read into a page (exports are streamed instead).
const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// The JSON API, called in-process.
#[derive(Clone)]
pub struct Api {
    router: axum::Router,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Api(..)")
    }
}

/// Why the API did not do what a page asked: its status and the problem's `detail`.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: StatusCode,
    pub detail: String,
    /// The field the problem names, when it names one.
    pub field: Option<String>,
}

impl Failure {
    /// The problem in words, with the field it names.
    pub fn explained(&self) -> String {
        match &self.field {
            Some(field) => format!("{} (field: {field})", self.detail),
            None => self.detail.clone(),
        }
    }

    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into(), field: None }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.status == StatusCode::UNAUTHORIZED {
            // The credential was revoked or expired since sign-in.
            return Redirect::to("/console/sign-in?expired=1").into_response();
        }
        // Drawn as a page by [`super::problems`], which knows the session.
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl Api {
    pub fn new(router: axum::Router) -> Self {
        Self { router }
    }

    /// `GET path` as the session; the JSON answer, or the API's refusal.
    pub async fn get(&self, session: &Session, path: &str) -> Result<Value, Failure> {
        self.send(session, Method::GET, path, None).await
    }

    /// `method path` with a JSON body as the session.
    pub async fn send(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let response = self.call(&session.credential, session.peer, method, path, body).await;
        read_json(response).await
    }

    /// `GET /v1/me` with a credential not yet in a session (sign-in).
    pub async fn me(&self, credential: &str, peer: Option<Peer>) -> Result<Value, Failure> {
        read_json(self.call(credential, peer, Method::GET, "/v1/me", None).await).await
    }

    /// The API's response as it is, for downloads.
    pub async fn raw(&self, session: &Session, path: &str) -> Response {
        self.call(&session.credential, session.peer, Method::GET, path, None).await
    }

    async fn call(
        &self,
        credential: &str,
        peer: Option<Peer>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {credential}"))
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let Ok(mut request) = request.body(body) else {
            return Failure::new(StatusCode::BAD_REQUEST, "That address cannot be asked for.")
                .into_response();
        };
        // The API records the browser's address (audit, limits), not the console's.
        if let Some(peer) = peer {
            request.extensions_mut().insert(peer);
        }
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

async fn read_json(response: Response) -> Result<Value, Failure> {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
        .await
        .map_err(|_| Failure::new(StatusCode::BAD_GATEWAY, "The answer was too large to show."))?;
    let body: Value =
        if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"]
        .as_str()
        .or_else(|| body["title"].as_str())
        .map_or_else(|| status.canonical_reason().unwrap_or("Refused").to_owned(), str::to_owned);
    Err(Failure { status, detail, field: body["field"].as_str().map(str::to_owned) })
}
