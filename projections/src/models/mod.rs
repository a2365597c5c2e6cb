//! The read models, each a projector and the queries over its rows.

pub mod analytics;
pub mod audit;
pub mod billing;
pub mod conversations;
pub mod directory;
pub mod documents;
pub mod quotas;
pub mod webhooks;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_store::RecordedEvent;

use crate::error::ProjectionError;

/// Each event of several tenants' pages with its tenant, page after page.
pub(crate) fn each_event<'a>(
    pages: &'a [(&'a str, &'a [RecordedEvent])],
) -> impl Iterator<Item = (&'a str, &'a RecordedEvent)> {
    pages.iter().flat_map(|(tenant, events)| events.iter().map(move |e| (*tenant, e)))
}

pub(crate) fn text(row: &AnyRow, col: &str) -> Result<String, ProjectionError> {
    Ok(row.try_get(col)?)
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>, ProjectionError> {
    Ok(row.try_get(col)?)
}

pub(crate) fn int(row: &AnyRow, col: &str) -> Result<i64, ProjectionError> {
    Ok(row.try_get(col)?)
}

pub(crate) fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>, ProjectionError> {
    Ok(row.try_get(col)?)
}

/// The largest page any list answers; the HTTP adapter refuses a larger `limit`.
pub const MAX_PAGE: u32 = 200;

/// Rows to fetch for a page of `limit`: one more than shown, to know whether a next page
/// exists without a second query.
pub(crate) fn page_size(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_PAGE)) + 1
}

/// A page of results and the cursor of the next page: `None` on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page from rows fetched with [`page_size`]: the extra row, if any, is dropped and
    /// the last row shown gives the cursor.
    pub(crate) fn from_rows(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Self {
        let shown = limit.clamp(1, MAX_PAGE) as usize;
        let more = items.len() > shown;
        items.truncate(shown);
        let next_cursor = if more { items.last().map(cursor) } else { None };
        Self { items, next_cursor }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

/// A cursor that is an id this list handed out: a UUID, or `InvalidCursor`.
pub(crate) fn id_cursor(cursor: Option<&str>) -> Result<String, ProjectionError> {
    match cursor {
        None => Ok(String::new()),
        Some(c) => {
            uuid::Uuid::parse_str(c).map(|u| u.to_string()).map_err(|_| ProjectionError::InvalidCursor)
        }
    }
}

/// Times are kept as Unix milliseconds and shown as RFC 3339 UTC.
pub mod time {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    /// `1970-01-01T00:00:00.000Z` form of Unix milliseconds.
    pub fn rfc3339(millis: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(millis)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn serialize<S: Serializer>(millis: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(*millis))
    }

    /// The same for a time that may be absent (`null`).
    pub mod option {
        use serde::Serializer;

        pub fn serialize<S: Serializer>(millis: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match millis {
                Some(m) => s.serialize_str(&super::rfc3339(*m)),
                None => s.serialize_none(),
            }
        }
    }
}
