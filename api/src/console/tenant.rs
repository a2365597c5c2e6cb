//! A tenant's pages, for its admins and for the operators and partner admins above it:
//! overview (quota bars, usage per day and per model, cost this month), agents, tools, users,
//! API keys, conversations, the audit log, settings, the export, and the dangerous actions
//! (suspend, purge, erase a person), which ask for the tenant's slug typed in.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::client::Failure;
use super::platform::{query, secret_once, tokens_per_day};
use super::session::Session;
use super::views::{self, text, when};
use super::{ConsoleState, charts};

pub fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/t/{tenant}", get(overview))
        .route("/t/{tenant}/agents", get(agents).post(create_agent))
        .route("/t/{tenant}/tools", get(tools).post(create_tool))
        .route("/t/{tenant}/users", get(users).post(create_user))
        .route("/t/{tenant}/users/erase", post(erase_user))
        .route("/t/{tenant}/keys", get(keys).post(issue_key))
        .route("/t/{tenant}/keys/{key}/revoke", post(revoke_key))
        .route("/t/{tenant}/conversations", get(conversations))
        .route("/t/{tenant}/conversations/{conversation}", get(conversation))
        .route("/t/{tenant}/audit", get(audit))
        .route("/t/{tenant}/settings", get(settings).post(save_settings))
        .route("/t/{tenant}/export", get(export))
        .route("/t/{tenant}/suspend", post(suspend))
        .route("/t/{tenant}/resume", post(resume))
        .route("/t/{tenant}/purge", post(purge))
}

/// The tenant as the signed-in key may read it; ids that are no UUID are 404 here, before
/// the API is asked.
async fn tenant(state: &ConsoleState, session: &Session, id: &str) -> Result<Value, Failure> {
    if Uuid::parse_str(id).is_err() {
        return Err(Failure::new(StatusCode::NOT_FOUND, "No such tenant."));
    }
    state.api.get(session, &format!("/v1/tenants/{id}")).await
}

/// A create form's one request: the token checked, `body` posted to the tenant's
/// `collection`, and back to the collection's page.
async fn create_in(
    state: &ConsoleState,
    session: &Session,
    id: &str,
    csrf: &str,
    collection: &str,
    body: Value,
) -> Result<Response, Failure> {
    session.check(csrf)?;
    tenant(state, session, id).await?;
    state.api.send(session, Method::POST, &format!("/v1/tenants/{id}/{collection}"), Some(body)).await?;
    Ok(Redirect::to(&format!("/console/t/{id}/{collection}")).into_response())
}

/// The tenant and the first 200 items of one of its collections, as the session may read
/// them.
async fn listing(
    state: &ConsoleState,
    session: &Session,
    id: &str,
    collection: &str,
) -> Result<(Value, Vec<Value>), Failure> {
    let t = tenant(state, session, id).await?;
    let page = state.api.get(session, &format!("/v1/tenants/{id}/{collection}?limit=200")).await?;
    Ok((t, items(&page)))
}

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn overview(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let t = tenant(&state, &session, &id).await?;
    let quotas = state.api.get(&session, &format!("/v1/tenants/{id}/quotas")).await?;
    let usage = state.api.get(&session, &format!("/v1/tenants/{id}/usage")).await?;
    let days = tokens_per_day(&usage);
    let mut per_model: Vec<(String, f64)> = usage["by_model"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let tokens =
                l["prompt_tokens"].as_f64().unwrap_or(0.0) + l["completion_tokens"].as_f64().unwrap_or(0.0);
            (text(&l["model"]), tokens)
        })
        .collect();
    per_model.sort_by(|a, b| b.1.total_cmp(&a.1));
    let slug = text(&t["slug"]);
    let suspended = t["status"].as_str() == Some("suspended");
    let body = html! {
        dl.facts {
            dt { "Status" } dd { span class={"status " (text(&t["status"]))} { (text(&t["status"])) } }
            dt { "Plan" } dd { (text(&t["plan"])) }
            dt { "Created" } dd { (when(&t["created_at"])) }
            dt { "Tokens this month" } dd #tokens-this-month { (text(&usage["total_tokens"])) }
            dt { "Cost this month" } dd #cost-this-month { (text(&usage["total_cost"])) }
        }
        section aria-labelledby="quotas" {
            h2 #quotas { "Quotas" }
            @for q in items(&quotas) {
                (views::quota_bar(&text(&q["limit"]), q["used"].as_u64().unwrap_or(0), q["max"].as_u64().unwrap_or(0)))
            }
        }
        section aria-labelledby="per-day" {
            h2 #per-day { "Tokens per day this month" }
            (charts::columns("usage-per-day", "Tokens per day this month", &days))
        }
        section aria-labelledby="per-model" {
            h2 #per-model { "Tokens per model this month" }
            @if per_model.is_empty() { p.empty { "No usage this month yet." } }
            @else { (charts::bars("usage-per-model", "Tokens per model this month", &per_model)) }
        }
        section aria-labelledby="data" {
            h2 #data { "Data" }
            p { a href={"/console/t/" (id) "/export"} download { "Download the export (JSON Lines, verifiable with " code { "tenantry verify" } ")" } }
        }
        section.dangers aria-labelledby="dangers" {
            h2 #dangers { "Dangerous actions" }
            @if suspended {
                (views::dangerous(&session, &format!("/console/t/{id}/resume"), "Resume tenant", "Its keys and users work again.", &slug))
            } @else {
                (views::dangerous(&session, &format!("/console/t/{id}/suspend"), "Suspend tenant", "Every key and user of this tenant is refused until it is resumed.", &slug))
            }
            @if session.is_operator() || session.is_partner_admin() {
                (views::dangerous(&session, &format!("/console/t/{id}/purge"), "Purge tenant", "Deletes the tenant's log and read models and destroys its keys: nothing of it can be read again.", &slug))
            }
        }
    };
    Ok(views::tenant_page(&session, &t, &format!("{} — overview", text(&t["name"])), body).into_response())
}

async fn agents(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let (t, list) = listing(&state, &session, &id, "agents").await?;
    let rows = list
        .iter()
        .map(|a| {
            html! { tr {
                td { (text(&a["name"])) }
                td { (text(&a["model"])) }
                td.num { (a["tool_ids"].as_array().map_or(0, Vec::len)) }
                td { @if a["archived"].as_bool() == Some(true) { "archived" } @else { "active" } }
                td { (when(&a["created_at"])) }
            } }
        })
        .collect();
    let body = html! {
        (views::table("Agents", &["Name", "Model", "Tools", "Status", "Created"], rows))
        section aria-labelledby="create-agent" {
            h2 #create-agent { "Create an agent" }
            form.card method="post" action={"/console/t/" (id) "/agents"} {
                (views::csrf(&session))
                (views::input("Name", "name", "text", true))
                (views::input("Model (the tenant's default when empty)", "model", "text", false))
                div.field {
                    label for="f-system_prompt" { "System prompt" }
                    textarea #f-system_prompt name="system_prompt" rows="4" {}
                }
                button type="submit" { "Create agent" }
            }
        }
    };
    Ok(views::tenant_page(&session, &t, "Agents", body).into_response())
}

#[derive(Debug, Deserialize)]
struct NewAgent {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    system_prompt: String,
}

async fn create_agent(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<NewAgent>,
) -> Result<Response, Failure> {
    let mut body = json!({ "name": form.name.trim(), "system_prompt": form.system_prompt });
    if !form.model.trim().is_empty() {
        body["model"] = json!(form.model.trim());
    }
    create_in(&state, &session, &id, &form.csrf, "agents", body).await
}

async fn tools(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let (t, list) = listing(&state, &session, &id, "tools").await?;
    let rows = list
        .iter()
        .map(|x| {
            html! { tr {
                td { (text(&x["name"])) }
                td { (text(&x["description"])) }
                td { code { (text(&x["endpoint"])) } }
                td { @if x["enabled"].as_bool() == Some(true) { "enabled" } @else { "disabled" } }
            } }
        })
        .collect();
    let body = html! {
        (views::table("Tools", &["Name", "Description", "Endpoint", "Status"], rows))
        section aria-labelledby="create-tool" {
            h2 #create-tool { "Add a tool" }
            form.card method="post" action={"/console/t/" (id) "/tools"} {
                (views::csrf(&session))
                (views::input("Name", "name", "text", true))
                (views::input("Description", "description", "text", false))
                (views::input("Endpoint (https URL)", "endpoint", "url", true))
                button type="submit" { "Add tool" }
            }
        }
    };
    Ok(views::tenant_page(&session, &t, "Tools", body).into_response())
}

#[derive(Debug, Deserialize)]
struct NewTool {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    endpoint: String,
}

async fn create_tool(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<NewTool>,
) -> Result<Response, Failure> {
    let body = json!({ "name": form.name.trim(), "description": form.description, "endpoint": form.endpoint.trim() });
    create_in(&state, &session, &id, &form.csrf, "tools", body).await
}

async fn users(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let (t, list) = listing(&state, &session, &id, "users").await?;
    let rows = list
        .iter()
        .map(|u| {
            html! { tr {
                td { (text(&u["email"])) }
                td { (text(&u["role"])) }
                td { code { (text(&u["id"])) } }
                td { (when(&u["created_at"])) }
            } }
        })
        .collect();
    let slug = text(&t["slug"]);
    let body = html! {
        (views::table("Users", &["Email", "Role", "Id", "Created"], rows))
        section aria-labelledby="create-user" {
            h2 #create-user { "Add a user" }
            form.card method="post" action={"/console/t/" (id) "/users"} {
                (views::csrf(&session))
                (views::input("Email", "email", "email", true))
                (views::select("Role", "role", &[("user", "User"), ("admin", "Admin")]))
                button type="submit" { "Add user" }
            }
        }
        @if !list.is_empty() {
            section.dangers aria-labelledby="erase" {
                h2 #erase { "Erase a person" }
                form.danger method="post" action={"/console/t/" (id) "/users/erase"} {
                    (views::csrf(&session))
                    p { "Destroys the person's key: their email and everything they wrote read as [erased] everywhere, for good." }
                    div.field {
                        label for="f-user" { "Person" }
                        select #f-user name="user_id" {
                            @for u in &list { option value=(text(&u["id"])) { (text(&u["email"])) } }
                        }
                    }
                    label for="confirm-erase" { "Type the slug " code { (slug) } " to confirm" }
                    input #confirm-erase type="text" name="confirm" required autocomplete="off";
                    button.danger type="submit" { "Erase person" }
                }
            }
        }
    };
    Ok(views::tenant_page(&session, &t, "Users", body).into_response())
}

#[derive(Debug, Deserialize)]
struct NewUser {
    #[serde(default)]
    csrf: String,
    email: String,
    role: String,
}

async fn create_user(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<NewUser>,
) -> Result<Response, Failure> {
    let body = json!({ "email": form.email.trim(), "role": form.role });
    create_in(&state, &session, &id, &form.csrf, "users", body).await
}

/// A dangerous action's form: the CSRF token and the slug typed in.
#[derive(Debug, Deserialize)]
struct Confirmed {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    user_id: String,
}

/// The tenant, once the form's token is right and its slug was typed in exactly; a wrong
/// slug does nothing (422).
async fn confirmed(
    state: &ConsoleState,
    session: &Session,
    id: &str,
    form: &Confirmed,
) -> Result<Value, Failure> {
    session.check(&form.csrf)?;
    let t = tenant(state, session, id).await?;
    if form.confirm.trim() != text(&t["slug"]) {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The slug typed in does not match this tenant's; nothing was done.",
        ));
    }
    Ok(t)
}

async fn erase_user(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Result<Response, Failure> {
    confirmed(&state, &session, &id, &form).await?;
    if Uuid::parse_str(&form.user_id).is_err() {
        return Err(Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "Pick a person to erase."));
    }
    state
        .api
        .send(&session, Method::POST, &format!("/v1/tenants/{id}/users/{}/erase", form.user_id), None)
        .await?;
    Ok(Redirect::to(&format!("/console/t/{id}/users")).into_response())
}

async fn suspend(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Result<Response, Failure> {
    confirmed(&state, &session, &id, &form).await?;
    let body = json!({ "reason": "suspended from the console" });
    state.api.send(&session, Method::POST, &format!("/v1/tenants/{id}/suspend"), Some(body)).await?;
    Ok(Redirect::to(&format!("/console/t/{id}")).into_response())
}

async fn resume(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Result<Response, Failure> {
    confirmed(&state, &session, &id, &form).await?;
    state.api.send(&session, Method::POST, &format!("/v1/tenants/{id}/resume"), None).await?;
    Ok(Redirect::to(&format!("/console/t/{id}")).into_response())
}

async fn purge(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Result<Response, Failure> {
    let t = confirmed(&state, &session, &id, &form).await?;
    state.api.send(&session, Method::DELETE, &format!("/v1/tenants/{id}"), None).await?;
    let body = html! {
        p role="status" { "The purge of " strong { (text(&t["slug"])) } " has started; it runs in the background and resumes after a restart." }
        p { a href="/console/tenants" { "Back to tenants" } }
    };
    Ok((StatusCode::ACCEPTED, views::page(Some(&session), "Purge started", body)).into_response())
}

async fn keys(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let t = tenant(&state, &session, &id).await?;
    let page = state.api.get(&session, &format!("/v1/tenants/{id}/api-keys?limit=200")).await?;
    Ok(views::tenant_page(&session, &t, "API keys", keys_body(&session, &id, &page, None)).into_response())
}

fn keys_body(session: &Session, id: &str, page: &Value, issued: Option<&Value>) -> Markup {
    let rows = items(page)
        .iter()
        .map(|k| {
            let key_id = text(&k["id"]);
            let revoked = k["revoked"].as_bool() == Some(true);
            html! { tr {
                td { (text(&k["name"])) }
                td { (text(&k["role"])) }
                td { (k["scopes"].as_array().map(|s| s.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                td { (when(&k["created_at"])) }
                td { (when(&k["last_used_at"])) }
                td { @if revoked { "revoked" } @else { "active" } }
                td {
                    @if !revoked {
                        form.inline method="post" action={"/console/t/" (id) "/keys/" (key_id) "/revoke"} {
                            (views::csrf(session))
                            button type="submit" aria-label={"Revoke " (text(&k["name"]))} { "Revoke" }
                        }
                    }
                }
            } }
        })
        .collect();
    html! {
        @if let Some(issued) = issued {
            (secret_once(&format!("The key {}", text(&issued["name"])), &issued["key"]))
        }
        (views::table("API keys", &["Name", "Role", "Scopes", "Created", "Last used", "Status", ""], rows))
        section aria-labelledby="issue-key" {
            h2 #issue-key { "Issue a key" }
            form.card method="post" action={"/console/t/" (id) "/keys"} {
                (views::csrf(session))
                (views::input("Name", "name", "text", true))
                (views::select("Role", "role", &[("admin", "Admin"), ("user", "User (needs a user id)")]))
                (views::input("User id (for a user's key)", "user_id", "text", false))
                button type="submit" { "Issue key" }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct NewKey {
    #[serde(default)]
    csrf: String,
    name: String,
    role: String,
    #[serde(default)]
    user_id: String,
}

async fn issue_key(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<NewKey>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    let t = tenant(&state, &session, &id).await?;
    let mut body = json!({ "name": form.name.trim(), "role": form.role });
    if !form.user_id.trim().is_empty() {
        body["user_id"] = json!(form.user_id.trim());
    }
    let issued =
        state.api.send(&session, Method::POST, &format!("/v1/tenants/{id}/api-keys"), Some(body)).await?;
    let page = state.api.get(&session, &format!("/v1/tenants/{id}/api-keys?limit=200")).await?;
    let body = keys_body(&session, &id, &page, Some(&issued));
    Ok((StatusCode::CREATED, views::tenant_page(&session, &t, "API keys", body)).into_response())
}

#[derive(Debug, Deserialize)]
struct Token {
    #[serde(default)]
    csrf: String,
}

async fn revoke_key(
    State(state): State<ConsoleState>,
    session: Session,
    Path((id, key)): Path<(String, String)>,
    Form(form): Form<Token>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    tenant(&state, &session, &id).await?;
    if Uuid::parse_str(&key).is_err() {
        return Err(Failure::new(StatusCode::NOT_FOUND, "No such key."));
    }
    state.api.send(&session, Method::DELETE, &format!("/v1/tenants/{id}/api-keys/{key}"), None).await?;
    Ok(Redirect::to(&format!("/console/t/{id}/keys")).into_response())
}

#[derive(Debug, Deserialize)]
struct Cursor {
    #[serde(default)]
    cursor: String,
}

async fn conversations(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Query(c): Query<Cursor>,
) -> Result<Response, Failure> {
    let t = tenant(&state, &session, &id).await?;
    let path = format!("/v1/tenants/{id}/conversations{}", query(&[("cursor", &c.cursor), ("limit", "50")]));
    let page = state.api.get(&session, &path).await?;
    let rows = items(&page)
        .iter()
        .map(|c| {
            let title = text(&c["title"]);
            html! { tr {
                td { a href={"/console/t/" (id) "/conversations/" (text(&c["id"]))} {
                    @if title.is_empty() { "(untitled)" } @else { (title) }
                } }
                td.num { (text(&c["message_count"])) }
                td { (when(&c["last_message_at"])) }
                td { @if c["archived"].as_bool() == Some(true) { "archived" } }
            } }
        })
        .collect();
    let next = text(&page["next_cursor"]);
    let body = html! {
        (views::table("Conversations", &["Title", "Messages", "Last message", ""], rows))
        @if !next.is_empty() { p { a href={"/console/t/" (id) "/conversations" (query(&[("cursor", &next)]))} { "Next page" } } }
    };
    Ok(views::tenant_page(&session, &t, "Conversations", body).into_response())
}

async fn conversation(
    State(state): State<ConsoleState>,
    session: Session,
    Path((id, conversation)): Path<(String, String)>,
    Query(c): Query<Cursor>,
) -> Result<Response, Failure> {
    let t = tenant(&state, &session, &id).await?;
    if Uuid::parse_str(&conversation).is_err() {
        return Err(Failure::new(StatusCode::NOT_FOUND, "No such conversation."));
    }
    let thread = state.api.get(&session, &format!("/v1/tenants/{id}/conversations/{conversation}")).await?;
    let path = format!(
        "/v1/tenants/{id}/conversations/{conversation}/messages{}",
        query(&[("cursor", &c.cursor), ("limit", "100")])
    );
    let page = state.api.get(&session, &path).await?;
    let next = text(&page["next_cursor"]);
    let title = text(&thread["title"]);
    let body = html! {
        ol.messages {
            @for m in items(&page) {
                li class={"message " (text(&m["role"]))} {
                    p.meta { strong { (text(&m["role"])) } " · " (when(&m["created_at"]))
                        @if !m["model"].is_null() { " · " (text(&m["model"])) }
                        @if let Some(u) = m["usage"].as_object() {
                            " · " (text(&u["prompt_tokens"])) " + " (text(&u["completion_tokens"])) " tokens"
                        }
                    }
                    p.content { (text(&m["content"])) }
                }
            }
        }
        @if !next.is_empty() { p { a href={"/console/t/" (id) "/conversations/" (conversation) (query(&[("cursor", &next)]))} { "Later messages" } } }
    };
    let heading = if title.is_empty() { "(untitled conversation)".to_owned() } else { title };
    Ok(views::tenant_page(&session, &t, &heading, body).into_response())
}

#[derive(Debug, Deserialize)]
struct AuditFilter {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cursor: String,
}

async fn audit(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Query(f): Query<AuditFilter>,
) -> Result<Response, Failure> {
    let t = tenant(&state, &session, &id).await?;
    let filters = [("action", f.action.as_str()), ("actor", &f.actor), ("from", &f.from), ("to", &f.to)];
    let mut asked = filters.to_vec();
    asked.extend([("cursor", f.cursor.as_str()), ("limit", "100")]);
    let page = state.api.get(&session, &format!("/v1/tenants/{id}/audit{}", query(&asked))).await?;
    let rows = items(&page)
        .iter()
        .map(|e| {
            html! { tr {
                td { (when(&e["at"])) }
                td { (text(&e["actor"])) }
                td { (text(&e["action"])) }
                td { (text(&e["target"])) }
                td { (text(&e["outcome"])) }
                td { (text(&e["reason"])) }
            } }
        })
        .collect();
    let next = text(&page["next_cursor"]);
    let mut more = filters.to_vec();
    more.push(("cursor", &next));
    let body = html! {
        form.filters method="get" action={"/console/t/" (id) "/audit"} {
            div.field { label for="f-action" { "Action" } input #f-action type="text" name="action" value=(f.action) placeholder="agent.created"; }
            div.field { label for="f-actor" { "Actor" } input #f-actor type="text" name="actor" value=(f.actor) placeholder="key:…"; }
            div.field { label for="f-from" { "From (date)" } input #f-from type="date" name="from" value=(f.from); }
            div.field { label for="f-to" { "To (date)" } input #f-to type="date" name="to" value=(f.to); }
            button type="submit" { "Filter" }
        }
        (views::table("Audit log", &["When", "Actor", "Action", "Target", "Outcome", "Reason"], rows))
        @if !next.is_empty() { p { a href={"/console/t/" (id) "/audit" (query(&more))} { "Older entries" } } }
    };
    Ok(views::tenant_page(&session, &t, "Audit log", body).into_response())
}

async fn settings(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let t = tenant(&state, &session, &id).await?;
    let current = state.api.get(&session, &format!("/v1/tenants/{id}/settings")).await?;
    Ok(views::tenant_page(&session, &t, "Settings", settings_body(&session, &id, &current, None))
        .into_response())
}

fn settings_body(session: &Session, id: &str, current: &Value, saved: Option<&str>) -> Markup {
    let pretty = serde_json::to_string_pretty(current).unwrap_or_default();
    html! {
        @if let Some(note) = saved { p.notice role="status" { (note) } }
        form.card method="post" action={"/console/t/" (id) "/settings"} {
            (views::csrf(session))
            div.field {
                label for="f-settings" { "Settings (JSON: agent_name, system_prompt, default_model, allowed_models, feature_flags, custom)" }
                textarea #f-settings name="settings" rows="18" spellcheck="false" { (pretty) }
            }
            p.hint { "Fields left out stay as they are; " code { "null" } " clears one; " code { "custom" } " merges member by member." }
            button type="submit" { "Save settings" }
        }
    }
}

#[derive(Debug, Deserialize)]
struct SettingsForm {
    #[serde(default)]
    csrf: String,
    settings: String,
}

async fn save_settings(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<SettingsForm>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    let t = tenant(&state, &session, &id).await?;
    let patch: Value =
        serde_json::from_str(&form.settings).ok().filter(Value::is_object).ok_or_else(|| {
            Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "The settings must be a JSON object.")
        })?;
    state.api.send(&session, Method::PATCH, &format!("/v1/tenants/{id}/settings"), Some(patch)).await?;
    let current = state.api.get(&session, &format!("/v1/tenants/{id}/settings")).await?;
    let body = settings_body(&session, &id, &current, Some("Saved."));
    Ok(views::tenant_page(&session, &t, "Settings", body).into_response())
}

async fn export(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let t = tenant(&state, &session, &id).await?;
    let mut response = state.api.raw(&session, &format!("/v1/tenants/{id}/export")).await;
    if !response.status().is_success() {
        return Err(Failure::new(response.status(), "The export could not be made."));
    }
    let name = format!("attachment; filename=\"{}-export.jsonl\"", text(&t["slug"]));
    if let Ok(value) = HeaderValue::from_str(&name) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
