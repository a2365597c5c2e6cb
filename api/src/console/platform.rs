//! Operators' and partner admins' pages: tenants (search, usage this month, a sparkline,
//! create), partners, operators, the read models' standing with a rebuild, a partner's
//! fleet usage.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{Datelike, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::Failure;
use super::session::Session;
use super::views::{self, text, when};
use super::{ConsoleState, charts};

pub fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/tenants", get(tenants).post(create_tenant))
        .route("/partners", get(partners).post(create_partner))
        .route("/operators", get(operators))
        .route("/projections", get(projections))
        .route("/projections/rebuild", post(rebuild))
        .route("/fleet", get(fleet))
}

/// A query string from pairs, each value encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(k, v);
    }
    let out = out.finish();
    if out.is_empty() { out } else { format!("?{out}") }
}

/// The days of this month so far, `YYYY-MM-DD`.
pub fn days_this_month() -> Vec<String> {
    let today = Utc::now().date_naive();
    (1..=today.day()).filter_map(|d| today.with_day(d)).map(|d| d.format("%Y-%m-%d").to_string()).collect()
}

/// Tokens per day of this month from a usage report's `by_day` lines.
pub fn tokens_per_day(usage: &Value) -> Vec<(String, f64)> {
    let mut per_day: BTreeMap<String, f64> = days_this_month().into_iter().map(|d| (d, 0.0)).collect();
    for line in usage["by_day"].as_array().into_iter().flatten() {
        let tokens =
            line["prompt_tokens"].as_f64().unwrap_or(0.0) + line["completion_tokens"].as_f64().unwrap_or(0.0);
        if let Some(day) = line["day"].as_str() {
            *per_day.entry(day.to_owned()).or_default() += tokens;
        }
    }
    per_day.into_iter().collect()
}

#[derive(Debug, Deserialize)]
struct TenantSearch {
    #[serde(default)]
    q: String,
    #[serde(default)]
    cursor: String,
}

async fn tenants(
    State(state): State<ConsoleState>,
    session: Session,
    Query(search): Query<TenantSearch>,
) -> Result<Response, Failure> {
    if !(session.is_operator() || session.is_partner_admin()) {
        return Ok(Redirect::to(&session.home()).into_response());
    }
    let path =
        format!("/v1/tenants{}", query(&[("q", &search.q), ("cursor", &search.cursor), ("limit", "50")]));
    let page = state.api.get(&session, &path).await?;
    let mut rows = Vec::new();
    for t in page["items"].as_array().into_iter().flatten() {
        let id = text(&t["id"]);
        // Each row's usage is the tenant's own report, as the signed-in key may read it.
        let usage = state.api.get(&session, &format!("/v1/tenants/{id}/usage")).await.unwrap_or(Value::Null);
        let days = tokens_per_day(&usage);
        let values: Vec<f64> = days.iter().map(|d| d.1).collect();
        rows.push(html! {
            tr {
                td { a href={"/console/t/" (id)} { (text(&t["slug"])) } }
                td { (text(&t["name"])) }
                td { span class={"status " (text(&t["status"]))} { (text(&t["status"])) } }
                td { (text(&t["plan"])) }
                td.num { (charts::compact(usage["total_tokens"].as_f64().unwrap_or(0.0))) }
                td.num { (text(&usage["total_cost"])) }
                td { (charts::sparkline(&format!("tokens per day this month for {}", text(&t["slug"])), &values)) }
            }
        });
    }
    let next = text(&page["next_cursor"]);
    let body = html! {
        form.search method="get" action="/console/tenants" role="search" {
            label for="q" { "Search by slug or name" }
            input #q type="search" name="q" value=(search.q) maxlength="100";
            button type="submit" { "Search" }
        }
        (views::table("Tenants", &["Slug", "Name", "Status", "Plan", "Tokens this month", "Cost this month", "Tokens per day"], rows))
        @if !next.is_empty() {
            p { a href={"/console/tenants" (query(&[("q", &search.q), ("cursor", &next)]))} { "Next page" } }
        }
        section aria-labelledby="create-tenant" {
            h2 #create-tenant { "Create a tenant" }
            form.card method="post" action="/console/tenants" {
                (views::csrf(&session))
                (views::input("Slug", "slug", "text", true))
                (views::input("Name", "name", "text", true))
                (views::select("Plan", "plan", &[("starter", "Starter"), ("professional", "Professional"), ("enterprise", "Enterprise")]))
                button type="submit" { "Create tenant" }
            }
        }
    };
    Ok(views::page(Some(&session), "Tenants", body).into_response())
}

#[derive(Debug, Deserialize)]
struct NewTenant {
    #[serde(default)]
    csrf: String,
    slug: String,
    name: String,
    plan: String,
}

async fn create_tenant(
    State(state): State<ConsoleState>,
    session: Session,
    Form(form): Form<NewTenant>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    let mut body = json!({ "slug": form.slug.trim(), "name": form.name.trim(), "plan": form.plan });
    if let (true, Some(partner)) = (session.is_partner_admin(), &session.partner_id) {
        body["partner_id"] = json!(partner);
    }
    let created = state.api.send(&session, Method::POST, "/v1/tenants", Some(body)).await?;
    Ok(Redirect::to(&format!("/console/t/{}", text(&created["id"]))).into_response())
}

async fn partners(State(state): State<ConsoleState>, session: Session) -> Result<Response, Failure> {
    let page = state.api.get(&session, "/v1/partners?limit=200").await?;
    let rows = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            html! { tr {
                td { (text(&p["name"])) }
                td { code { (text(&p["id"])) } }
                td { (when(&p["created_at"])) }
                td { a href={"/console/fleet" (query(&[("partner", &text(&p["id"]))]))} { "Fleet usage" } }
            } }
        })
        .collect();
    let body = html! {
        (views::table("Partners", &["Name", "Id", "Created", ""], rows))
        @if session.is_operator() {
            section aria-labelledby="create-partner" {
                h2 #create-partner { "Add a partner" }
                form.card method="post" action="/console/partners" {
                    (views::csrf(&session))
                    (views::input("Name", "name", "text", true))
                    button type="submit" { "Add partner" }
                }
            }
        }
    };
    Ok(views::page(Some(&session), "Partners", body).into_response())
}

#[derive(Debug, Deserialize)]
struct NewPartner {
    #[serde(default)]
    csrf: String,
    name: String,
}

async fn create_partner(
    State(state): State<ConsoleState>,
    session: Session,
    Form(form): Form<NewPartner>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    let created = state
        .api
        .send(&session, Method::POST, "/v1/partners", Some(json!({ "name": form.name.trim() })))
        .await?;
    let body = html! {
        p { "Partner " strong { (text(&created["name"])) } " added." }
        (secret_once("The partner admin's key", &created["key"]))
        p { a href="/console/partners" { "Back to partners" } }
    };
    Ok((StatusCode::CREATED, views::page(Some(&session), "Partner added", body)).into_response())
}

/// A secret shown once, with a copy button (the script only copies; the text is there).
pub fn secret_once(label: &str, secret: &Value) -> Markup {
    html! {
        div.secret {
            p { strong { (label) } " — shown this once; store it now:" }
            code #secret data-secret { (text(secret)) }
            button type="button" data-copy="#secret" { "Copy" }
        }
    }
}

async fn operators(State(state): State<ConsoleState>, session: Session) -> Result<Response, Failure> {
    let page = state.api.get(&session, "/v1/operators?limit=200").await?;
    let rows = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            html! { tr {
                td { (text(&o["name"])) }
                td { code { (text(&o["id"])) } }
                td { @if o["removed"].as_bool() == Some(true) { "removed" } @else { "active" } }
                td { (when(&o["created_at"])) }
            } }
        })
        .collect();
    let body = views::table("Operators", &["Name", "Id", "Status", "Created"], rows);
    Ok(views::page(Some(&session), "Operators", body).into_response())
}

async fn projections(State(state): State<ConsoleState>, session: Session) -> Result<Response, Failure> {
    let status = state.api.get(&session, "/v1/projections").await?;
    let items = status["items"].as_array().cloned().unwrap_or_default();
    let rows = items
        .iter()
        .map(|p| {
            html! { tr {
                th scope="row" { (text(&p["projector"])) }
                td.num { (text(&p["tenants"])) }
                td.num { (text(&p["tenants_behind"])) }
                td.num { (text(&p["lag_events"])) }
                td.num { (p["stalled"].as_array().map_or(0, Vec::len)) }
            } }
        })
        .collect();
    let stalls: Vec<Markup> = items
        .iter()
        .flat_map(|p| {
            let projector = text(&p["projector"]);
            p["stalled"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |s| (projector.clone(), s))
        })
        .map(|(projector, s)| {
            html! { tr {
                td { (projector) }
                td { a href={"/console/t/" (text(&s["tenant"]))} { code { (text(&s["tenant"])) } } }
                td.num { (text(&s["position"])) }
                td { (text(&s["reason"])) }
                td {
                    form.inline method="post" action="/console/projections/rebuild" {
                        (views::csrf(&session))
                        input type="hidden" name="tenant_id" value=(text(&s["tenant"]));
                        input type="hidden" name="projection" value=(projector);
                        button type="submit" { "Rebuild" }
                    }
                }
            } }
        })
        .collect();
    let body = html! {
        (views::table("Read models", &["Projection", "Tenants", "Tenants behind", "Lag (events)", "Stalled tenants"], rows))
        h2 { "Stalled tenants" }
        (views::table("Stalled tenants", &["Projection", "Tenant", "At position", "Reason", ""], stalls))
        section aria-labelledby="rebuild" {
            h2 #rebuild { "Rebuild a tenant's read models" }
            form.card method="post" action="/console/projections/rebuild" {
                (views::csrf(&session))
                (views::input("Tenant id", "tenant_id", "text", true))
                button type="submit" { "Rebuild all its read models" }
            }
            p.hint { "A rebuild of every tenant runs with " code { "tenantry replay" } ", which shows progress and resumes." }
        }
    };
    Ok(views::page(Some(&session), "Read models", body).into_response())
}

#[derive(Debug, Deserialize)]
struct RebuildForm {
    #[serde(default)]
    csrf: String,
    tenant_id: String,
    #[serde(default)]
    projection: String,
}

async fn rebuild(
    State(state): State<ConsoleState>,
    session: Session,
    Form(form): Form<RebuildForm>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    let mut body = json!({ "tenant_id": form.tenant_id.trim() });
    if !form.projection.is_empty() {
        body["projection"] = json!(form.projection);
    }
    let done = state.api.send(&session, Method::POST, "/v1/projections/rebuild", Some(body)).await?;
    let body = html! {
        p role="status" { "Rebuilt the read models of tenant " code { (text(&done["tenant_id"])) } " from " (text(&done["events"])) " events." }
        p { a href="/console/projections" { "Back to read models" } }
    };
    Ok(views::page(Some(&session), "Rebuilt", body).into_response())
}

#[derive(Debug, Deserialize)]
struct FleetQuery {
    #[serde(default)]
    partner: String,
}

async fn fleet(
    State(state): State<ConsoleState>,
    session: Session,
    Query(q): Query<FleetQuery>,
) -> Result<Response, Failure> {
    let partner =
        if q.partner.is_empty() { session.partner_id.clone().unwrap_or_default() } else { q.partner };
    if partner.is_empty() {
        return Err(Failure::new(StatusCode::NOT_FOUND, "Pick a partner on the partners page."));
    }
    let report =
        state.api.get(&session, &format!("/v1/partners/{partner}/analytics?group_by=tenant")).await?;
    let tenants = state.api.get(&session, "/v1/tenants?limit=200").await.unwrap_or(Value::Null);
    let slug_of = |id: &str| {
        tenants["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["id"].as_str() == Some(id))
            .map_or_else(|| id.to_owned(), |t| text(&t["slug"]))
    };
    let groups = report["groups"].as_array().cloned().unwrap_or_default();
    let points: Vec<(String, f64)> = groups
        .iter()
        .map(|g| {
            let f = &g["figures"];
            let tokens =
                f["prompt_tokens"].as_f64().unwrap_or(0.0) + f["completion_tokens"].as_f64().unwrap_or(0.0);
            (slug_of(&text(&g["key"])), tokens)
        })
        .collect();
    let rows = groups
        .iter()
        .map(|g| {
            let f = &g["figures"];
            html! { tr {
                td { a href={"/console/t/" (text(&g["key"]))} { (slug_of(&text(&g["key"]))) } }
                td.num { (text(&f["conversations"])) }
                td.num { (text(&f["active_users"])) }
                td.num { (text(&f["prompt_tokens"])) }
                td.num { (text(&f["completion_tokens"])) }
                td.num { (text(&f["cost"])) }
            } }
        })
        .collect();
    let totals = &report["totals"];
    let body = html! {
        p { "From " (text(&report["from"])) " to " (text(&report["to"])) ": "
            strong { (text(&totals["cost"])) " " (text(&report["currency"])) } " across the fleet." }
        (charts::bars("fleet-tokens", "Tokens this month per tenant", &points))
        (views::table("Usage per tenant this month", &["Tenant", "Conversations", "Active users", "Prompt tokens", "Completion tokens", "Cost"], rows))
    };
    Ok(views::page(Some(&session), "Fleet usage", body).into_response())
}
