//! Extractors that turn their rejections into [`ApiError`], in words of this API rather than
//! of the framework.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The innermost message of an error: serde's own words, without the framework's preamble.
fn innermost(e: &dyn std::error::Error) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// JSON body: malformed JSON, wrong types and unknown fields are 400, an oversized body 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::PayloadTooLarge)
            }
            Err(JsonRejection::BytesRejection(e)) if crate::server::timed_out(&e) => {
                Err(ApiError::RequestTimeout)
            }
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::bad_request("the body must be JSON, sent with Content-Type: application/json"))
            }
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::bad_request(format!("malformed JSON: {}", innermost(&e))))
            }
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::bad_request(format!("invalid body: {}", innermost(&e))))
            }
            Err(_) => Err(ApiError::bad_request("the body could not be read")),
        }
    }
}

/// Path parameters: a malformed id is 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|e: PathRejection| ApiError::bad_request(format!("invalid path: {}", innermost(&e))))
    }
}

/// Query string: malformed parameters are 400; so is a NUL character, which no backend
/// can compare against.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        if raw.contains("%00") || raw.contains('\0') {
            return Err(ApiError::bad_request("query parameters must not contain the NUL character"));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e: QueryRejection| ApiError::bad_request(format!("invalid query: {}", innermost(&e))))
    }
}

/// `Tenantry-Min-Position: N`: the position a query must see.
#[derive(Debug, Clone, Copy, Default)]
pub struct MinPosition(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for MinPosition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("tenantry-min-position") {
            None => Ok(Self(None)),
            Some(v) => {
                v.to_str().ok().and_then(|v| v.trim().parse().ok()).map(|n| Self(Some(n))).ok_or_else(|| {
                    ApiError::BadRequest {
                        detail: "Tenantry-Min-Position must be a whole number".into(),
                        field: Some("Tenantry-Min-Position".into()),
                    }
                })
            }
        }
    }
}

/// A time in a query: RFC 3339 (`2026-11-29T10:00:00Z`) or a date (`2026-11-29`, a UTC day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    At(chrono::DateTime<chrono::Utc>),
    Day(chrono::NaiveDate),
}

impl TimeBound {
    /// As a lower bound: the time, or the start of the day.
    pub fn start(self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Self::At(at) => at,
            Self::Day(day) => day.and_time(chrono::NaiveTime::MIN).and_utc(),
        }
    }

    /// As an exclusive upper bound: the time, or the start of the next day (a date includes
    /// its whole day).
    pub fn end(self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Self::At(at) => at,
            Self::Day(day) => day.succ_opt().unwrap_or(day).and_time(chrono::NaiveTime::MIN).and_utc(),
        }
    }

    /// The UTC day it falls on.
    pub fn day(self) -> chrono::NaiveDate {
        match self {
            Self::At(at) => at.date_naive(),
            Self::Day(day) => day,
        }
    }
}

impl<'de> serde::Deserialize<'de> for TimeBound {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&text) {
            return Ok(Self::At(at.to_utc()));
        }
        chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").map(Self::Day).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not an RFC 3339 time (2026-11-29T10:00:00Z) or a date (2026-11-29)"
            ))
        })
    }
}
