//! Prices and budgets. `PUT /v1/prices` and `GET /v1/prices` (the platform's operators): price
//! tables on the platform log, each in force from its `effective_from`. `GET/PATCH …/budget`
//! (tenant admins): a monthly budget in money, its alert thresholds and hard stop, and what
//! the month has cost so far.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tenantry_domain::command::SetBudget;
use tenantry_domain::event::Budget;
use tenantry_domain::price::{Price, PriceTable, money, parse_money};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{Role, TenantContext, TenantId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Administering, Caller};
use super::error::ApiError;
use super::extract::AppJson;
use super::{AppState, answer};

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceBody {
    /// A decimal amount per 1,000 prompt tokens (`"0.0025"`).
    pub prompt_per_1k: String,
    /// A decimal amount per 1,000 completion tokens.
    pub completion_per_1k: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPrices {
    /// When the table takes effect (RFC 3339); now when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub effective_from: Option<chrono::DateTime<chrono::Utc>>,
    /// ISO 4217; `USD` when absent.
    pub currency: Option<String>,
    /// The price of models not named in `models`.
    pub default: PriceBody,
    pub models: Option<HashMap<String, PriceBody>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBudget {
    /// The monthly amount (`"250.00"`); `null` removes the budget.
    pub monthly: Option<String>,
    /// ISO 4217 (the price tables' currency); `USD` when absent.
    pub currency: Option<String>,
    /// Fractions of the budget to be told about when crossed (`[0.5, 0.8, 1.0]`).
    pub alert_at: Option<Vec<f64>>,
    /// Refuse (429 `budget`) what would cost past the budget.
    pub hard_stop: Option<bool>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_prices, set_prices)).routes(routes!(get_budget, set_budget))
}

fn price(field: &'static str, body: &PriceBody) -> Result<Price, ApiError> {
    let parse = |text: &str| {
        text.trim().parse().map_err(|_| ApiError::Unprocessable {
            field: field.into(),
            reason: format!("`{}` is not a decimal amount", text.chars().take(40).collect::<String>()),
        })
    };
    Ok(Price {
        prompt_per_1k: parse(&body.prompt_per_1k)?,
        completion_per_1k: parse(&body.completion_per_1k)?,
    })
}

fn shown(from: chrono::DateTime<chrono::Utc>, table: &PriceTable) -> Value {
    let body = |p: &Price| json!({ "prompt_per_1k": p.prompt_per_1k.to_string(), "completion_per_1k": p.completion_per_1k.to_string() });
    let models: serde_json::Map<String, Value> =
        table.models.iter().map(|(m, p)| (m.clone(), body(p))).collect();
    json!({
        "effective_from": from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "currency": table.currency,
        "default": body(&table.default),
        "models": models,
    })
}

fn operator(caller: &Caller) -> Result<TenantContext, ApiError> {
    if caller.role != Role::SuperAdmin {
        return Err(ApiError::Forbidden("only the platform's operators set prices".into()));
    }
    Ok(caller.acting_on(TenantId::PLATFORM))
}

#[utoipa::path(get, path = "/v1/prices", tag = "prices", responses((status = 200, description = "Every price table set, in the order set"), (status = "default", description = "Problem (RFC 9457): 401, 403 or 429")))]
pub async fn list_prices(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    operator(&caller)?;
    let history = state.commands.price_history_now().await?;
    let items: Vec<Value> = history.tables.iter().map(|(from, t)| shown(*from, t)).collect();
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(put, path = "/v1/prices", request_body = SetPrices, tag = "prices", responses((status = 200, description = "The table set"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 413, 422 or 429")))]
pub async fn set_prices(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<SetPrices>,
) -> Result<Response, ApiError> {
    let ctx = operator(&caller)?;
    let mut models = HashMap::new();
    for (model, p) in body.models.unwrap_or_default() {
        let p = price("models", &p)?;
        models.insert(model, p);
    }
    let table = PriceTable {
        models,
        default: price("default", &body.default)?,
        currency: body.currency.unwrap_or_else(|| "USD".to_owned()),
    };
    let from = body.effective_from.unwrap_or_else(chrono::Utc::now);
    let out = state.commands.set_prices(&ctx, &table, from).await?;
    Ok(answer(StatusCode::OK, shown(from, &table), out.position, None))
}

async fn standing(state: &AppState, ctx: &TenantContext) -> Result<Value, ApiError> {
    let s = state.commands.budget_standing(ctx).await?;
    let budget = s.budget.as_ref().map(|b| {
        json!({
            "monthly": money(b.monthly_nanos),
            "currency": b.currency,
            "alert_at": b.alert_at_permille.iter().map(|t| f64::from(*t) / 1000.0).collect::<Vec<_>>(),
            "hard_stop": b.hard_stop,
        })
    });
    Ok(json!({
        "budget": budget,
        "month": s.month,
        "spent": money(s.spent_nanos),
        "crossed": s.crossed.iter().map(|t| f64::from(*t) / 1000.0).collect::<Vec<_>>(),
    }))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/budget", tag = "budget", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "The budget, and what this month has cost"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn get_budget(
    State(state): State<AppState>,
    Administering(ctx): Administering,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(standing(&state, &ctx).await?))
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/budget", request_body = PatchBudget, tag = "budget", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "The budget, and what this month has cost"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn set_budget(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppJson(body): AppJson<PatchBudget>,
) -> Result<Response, ApiError> {
    let budget = match &body.monthly {
        None => None,
        Some(monthly) => {
            let monthly_nanos = parse_money(monthly).ok_or_else(|| ApiError::Unprocessable {
                field: "monthly".into(),
                reason: "a decimal amount of at most 9 decimals".into(),
            })?;
            let mut alert_at_permille = Vec::new();
            for t in body.alert_at.unwrap_or_default() {
                if !(t.is_finite() && t > 0.0 && t <= 10.0) {
                    return Err(ApiError::Unprocessable {
                        field: "alert_at".into(),
                        reason: "each a fraction above 0 and at most 10".into(),
                    });
                }
                alert_at_permille.push((t * 1000.0).round() as u16);
            }
            Some(Budget {
                monthly_nanos,
                currency: body.currency.clone().unwrap_or_else(|| "USD".to_owned()),
                alert_at_permille,
                hard_stop: body.hard_stop.unwrap_or(false),
            })
        }
    };
    let out = state.commands.tenant(&ctx, &TenantCommand::SetBudget(SetBudget { budget })).await?;
    Ok(answer(StatusCode::OK, standing(&state, &ctx).await?, out.position, None))
}
