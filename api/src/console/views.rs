//! The page frame and the pieces pages are made of. maud escapes every value it is given,
//! so a name holding markup shows as text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::session::Session;

/// A whole page: head, navigation for the session's role, the title and `body`.
pub fn page(session: Option<&Session>, title: &str, body: Markup) -> Markup {
    page_in(session, None, title, body)
}

/// A page of one tenant: the tenant's own navigation under the role's.
pub fn tenant_page(session: &Session, tenant: &Value, title: &str, body: Markup) -> Markup {
    page_in(Some(session), Some(tenant), title, body)
}

fn page_in(session: Option<&Session>, tenant: Option<&Value>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tenantry" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/home" { "tenantry" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            ul {
                                @if s.is_operator() {
                                    li { a href="/console/tenants" { "Tenants" } }
                                    li { a href="/console/partners" { "Partners" } }
                                    li { a href="/console/operators" { "Operators" } }
                                    li { a href="/console/projections" { "Read models" } }
                                } @else if s.is_partner_admin() {
                                    li { a href="/console/tenants" { "Tenants" } }
                                    li { a href="/console/fleet" { "Fleet usage" } }
                                }
                            }
                        }
                        form.sign-out method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span.who { (role_name(&s.role)) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                @if let (Some(s), Some(t)) = (session, tenant) {
                    @let id = text(&t["id"]);
                    nav.tenant aria-label="Tenant" {
                        span.tenant-name { (text(&t["name"])) " " span.slug { "(" (text(&t["slug"])) ")" } }
                        ul {
                            li { a href={"/console/t/" (id)} { "Overview" } }
                            li { a href={"/console/t/" (id) "/agents"} { "Agents" } }
                            li { a href={"/console/t/" (id) "/tools"} { "Tools" } }
                            li { a href={"/console/t/" (id) "/users"} { "Users" } }
                            li { a href={"/console/t/" (id) "/keys"} { "API keys" } }
                            li { a href={"/console/t/" (id) "/conversations"} { "Conversations" } }
                            li { a href={"/console/t/" (id) "/audit"} { "Audit log" } }
                            li { a href={"/console/t/" (id) "/settings"} { "Settings" } }
                            @if s.is_operator() || s.is_partner_admin() {
                                li { a href="/console/tenants" { "All tenants" } }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn role_name(role: &str) -> &'static str {
    match role {
        "super_admin" => "Operator",
        "partner_admin" => "Partner admin",
        "admin" => "Tenant admin",
        _ => "Signed in",
    }
}

/// A refusal or a failure as a page with its status: 403 for another tenant's pages, 404,
/// 409 (a legal hold), 422 (bad input), …
pub fn problem_page(session: Option<&Session>, status: StatusCode, detail: &str) -> Response {
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Not now",
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "Not accepted",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        _ => "Something went wrong",
    };
    let body = html! {
        p.problem role="alert" { (detail) }
        p { "Status " (status.as_u16()) ". " a href="/console/home" { "Back to the start" } }
    };
    (status, page(session, title, body)).into_response()
}

/// A JSON value as text: strings as they are, `null` as empty, the rest as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time shown to the minute, UTC.
pub fn when(value: &Value) -> String {
    let raw = text(value);
    chrono::DateTime::parse_from_rfc3339(&raw)
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or(raw)
}

/// A table with a caption (for screen readers and the eye), headings and rows.
pub fn table(caption: &str, headings: &[&str], rows: Vec<Markup>) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { "Nothing here yet." }
        } @else {
            table {
                caption { (caption) }
                thead { tr { @for h in headings { th scope="col" { (h) } } } }
                tbody { @for row in rows { (row) } }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A labelled text input.
pub fn input(label: &str, name: &str, kind: &str, required: bool) -> Markup {
    let id = format!("f-{name}");
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) type=(kind) name=(name) required[required];
        }
    }
}

/// A labelled choice among `options` (value, label).
pub fn select(label: &str, name: &str, options: &[(&str, &str)]) -> Markup {
    let id = format!("f-{name}");
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (value, shown) in options { option value=(value) { (shown) } }
            }
        }
    }
}

/// A quota as a bar: `used` of `max` with the figures in words.
pub fn quota_bar(name: &str, used: u64, max: u64) -> Markup {
    let id = format!("q-{name}");
    html! {
        div.quota {
            label for=(id) { (name.replace('_', " ")) }
            meter id=(id) min="0" max=(max.max(1)) value=(used.min(max)) high=(max.saturating_mul(8) / 10) optimum="0" {
                (used) " of " (max)
            }
            span.figures data-limit=(name) data-used=(used) { (used) " of " (max) }
        }
    }
}

/// A form that asks for the tenant's slug typed in before it does something that cannot be
/// undone.
pub fn dangerous(session: &Session, action: &str, label: &str, explain: &str, slug: &str) -> Markup {
    let id = format!("confirm-{}", action.rsplit('/').next().unwrap_or("action"));
    html! {
        form.danger method="post" action=(action) {
            (csrf(session))
            p { (explain) }
            label for=(id) { "Type the slug " code { (slug) } " to confirm" }
            input id=(id) type="text" name="confirm" required autocomplete="off";
            button.danger type="submit" { (label) }
        }
    }
}
