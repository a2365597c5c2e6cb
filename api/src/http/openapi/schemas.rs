//! The schemas of what the API answers, written once here and checked against live answers
//! by schemathesis in CI.

use serde_json::{Map, Value, json};

fn nullable(kind: &str) -> Value {
    json!({ "type": [kind, "null"] })
}

fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

/// An object schema with every property required and no others.
fn object(properties: Value) -> Value {
    let required: Vec<&String> = properties.as_object().map(|p| p.keys().collect()).unwrap_or_default();
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

fn page(item: &str) -> Value {
    object(json!({
        "items": { "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } },
        "next_cursor": nullable("string"),
    }))
}

fn with_key(schema: &Value) -> Value {
    let mut s = schema.clone();
    s["properties"]["key"] = json!({ "type": "string", "description": "the secret, shown once" });
    if let Some(r) = s["required"].as_array_mut() {
        r.push(json!("key"));
    }
    s
}

fn price_table() -> Value {
    let price =
        object(json!({ "prompt_per_1k": { "type": "string" }, "completion_per_1k": { "type": "string" } }));
    object(json!({
        "effective_from": time(),
        "currency": { "type": "string" },
        "default": price.clone(),
        "models": { "type": "object", "additionalProperties": price },
    }))
}

/// The figures of an analytics group (with its `key`) or of the totals.
fn analytics_figures(keyed: bool) -> Value {
    let count = json!({ "type": "integer", "minimum": 0 });
    let mut properties = json!({
        "conversations": count,
        "messages": object(json!({ "user": count, "assistant": count, "tool": count, "system": count })),
        "active_users": count,
        "prompt_tokens": count,
        "completion_tokens": count,
        "cost": { "type": "string", "description": "a decimal amount in `currency`" },
    });
    if keyed {
        properties["key"] = nullable("string");
    }
    object(properties)
}

fn with_secret(schema: &Value) -> Value {
    let mut s = schema.clone();
    s["properties"]["secret"] =
        json!({ "type": "string", "description": "the signing secret (`whsec_…`), shown once" });
    if let Some(r) = s["required"].as_array_mut() {
        r.push(json!("secret"));
    }
    s
}

pub(super) const ROLES: [&str; 2] = ["admin", "user"];
pub(super) const PLANS: [&str; 3] = ["starter", "professional", "enterprise"];
pub(super) const MESSAGE_ROLES: [&str; 4] = ["user", "assistant", "tool", "system"];

/// `GET …/settings?effective=true`: what the tenant has in effect, and where each value
/// came from (a tenant id; `null` for the default, or the plan for a limit).
fn effective_settings() -> Value {
    let source = json!({ "type": ["string", "null"], "format": "uuid" });
    let limit_names = [
        "max_agents",
        "max_users",
        "max_api_keys",
        "api_calls_per_day",
        "tokens_per_month",
        "storage_bytes",
        "requests_per_minute",
        "max_concurrent_requests",
    ];
    let limits: Map<String, Value> =
        limit_names.iter().map(|n| ((*n).to_owned(), json!({ "type": "integer", "minimum": 0 }))).collect();
    object(json!({
        "settings": { "$ref": "#/components/schemas/Settings" },
        "settings_from": {
            "type": "object",
            "additionalProperties": source.clone(),
            "description": "agent_name, system_prompt, default_model, allowed_models",
        },
        "feature_flags_from": { "type": "object", "additionalProperties": { "type": "string", "format": "uuid" } },
        "limits": object(Value::Object(limits)),
        "limits_from": { "type": "object", "additionalProperties": source },
    }))
}

pub(super) fn schemas() -> Map<String, Value> {
    let settings = object(json!({
        "agent_name": nullable("string"),
        "system_prompt": nullable("string"),
        "default_model": nullable("string"),
        "allowed_models": { "type": "array", "items": { "type": "string" } },
        "feature_flags": { "type": "object", "additionalProperties": { "type": "boolean" } },
        "custom": { "type": "object", "description": "the platform's own settings (at most 16 KiB)" },
    }));
    let tenant = object(json!({
        "id": { "type": "string", "format": "uuid" },
        "slug": { "type": "string" },
        "name": { "type": "string" },
        "plan": { "type": "string", "enum": PLANS },
        "status": { "type": "string", "enum": ["active", "suspended"] },
        "partner_id": nullable("string"),
        "parent_id": { "type": ["string", "null"], "description": "the tenant it was created under" },
        "settings": { "$ref": "#/components/schemas/Settings" },
        "limits": { "type": "object", "additionalProperties": { "type": ["integer", "null"] } },
        "created_at": time(),
        "updated_at": time(),
    }));
    let partner = object(
        json!({ "id": { "type": "string", "format": "uuid" }, "name": { "type": "string" }, "created_at": time() }),
    );
    let credential = object(json!({
        "id": { "type": "string", "format": "uuid" },
        "provider": { "type": "string", "enum": tenantry_domain::tenant::PROVIDERS },
        "name": { "type": "string" },
        "last4": { "type": "string", "description": "the secret's last four characters" },
        "fingerprint": { "type": "string", "description": "the first 16 hex digits of the secret's SHA-256" },
        "base_url": nullable("string"),
        "created_at": time(),
        "rotated_at": { "type": ["string", "null"], "format": "date-time" },
    }));
    let webhook = object(json!({
        "id": { "type": "string", "format": "uuid" },
        "url": { "type": "string" },
        "event_types": { "type": "array", "items": { "type": "string" } },
        "enabled": { "type": "boolean" },
        "disabled_reason": nullable("string"),
        "created_at": time(),
        "updated_at": time(),
        "secret_rotated_at": { "type": ["string", "null"], "format": "date-time" },
    }));
    let runtime_credential = {
        let mut c = credential.clone();
        c["properties"]["secret"] = json!({ "type": ["string", "null"], "description": "only for a key with `runtime:read`, or the operator" });
        if let Some(required) = c["required"].as_array_mut() {
            required.push(json!("secret"));
        }
        c
    };
    let runtime_tool = object(json!({
        "id": { "type": "string", "format": "uuid" },
        "name": { "type": "string" },
        "description": { "type": "string" },
        "endpoint": { "type": "string" },
        "parameters": { "type": "object" },
    }));
    let runtime = object(json!({
        "agent": { "$ref": "#/components/schemas/Agent" },
        "model": { "type": "string" },
        "system_prompt": { "type": "string", "description": "with its variables filled in" },
        "tools": { "type": "array", "items": runtime_tool },
        "feature_flags": { "type": "object", "additionalProperties": { "type": "boolean" } },
        "custom": { "type": "object" },
        "credential": { "oneOf": [{ "type": "null" }, runtime_credential] },
        "remaining": object(json!({
            "tokens_per_month": { "type": ["integer", "null"] },
            "api_calls_per_day": { "type": ["integer", "null"] },
        })),
    }));
    let operator = object(json!({
        "id": { "type": "string", "format": "uuid" },
        "name": { "type": "string" },
        "removed": { "type": "boolean" },
        "created_at": time(),
    }));
    let api_key = object(json!({
        "id": { "type": "string", "format": "uuid" },
        "name": { "type": "string" },
        "role": { "type": "string", "enum": ROLES },
        "scopes": { "type": "array", "items": { "type": "string", "enum": tenantry_domain::Scope::ALL.map(|s| s.as_str()) }, "description": "empty: all the role allows" },
        "revoked": { "type": "boolean" },
        "created_at": time(),
        "expires_at": { "type": ["string", "null"], "format": "date-time" },
        "rotated_at": { "type": ["string", "null"], "format": "date-time" },
        "last_used_at": { "type": ["string", "null"], "format": "date-time", "description": "kept to the minute" },
    }));
    let agent = object(json!({
        "id": { "type": "string", "format": "uuid" },
        "name": { "type": "string" },
        "model": { "type": "string" },
        "system_prompt": { "type": "string", "description": "empty for a user key" },
        "tool_ids": { "type": "array", "items": { "type": "string" } },
        "archived": { "type": "boolean" },
        "created_at": time(),
        "updated_at": time(),
    }));
    let user = object(json!({
        "id": { "type": "string", "format": "uuid" },
        "email": { "type": "string" },
        "role": { "type": "string", "enum": ROLES },
        "issuer": { "type": ["string", "null"], "description": "the identity provider the user came from" },
        "created_at": time(),
    }));
    let tool = object(json!({
        "id": { "type": "string", "format": "uuid" },
        "name": { "type": "string" },
        "description": { "type": "string" },
        "endpoint": { "type": "string" },
        "parameters": { "type": "object", "description": "the JSON Schema registered" },
        "enabled": { "type": "boolean" },
        "created_at": time(),
    }));
    let conversation = object(json!({
        "id": { "type": "string", "format": "uuid" },
        "agent_id": { "type": "string" },
        "user_id": nullable("string"),
        "title": nullable("string"),
        "message_count": { "type": "integer", "minimum": 0 },
        "archived": { "type": "boolean" },
        "created_at": time(),
        "last_message_at": time(),
    }));
    let message = object(json!({
        "seq": { "type": "integer", "minimum": 1 },
        "id": { "type": "string", "format": "uuid" },
        "role": { "type": "string", "enum": MESSAGE_ROLES },
        "content": { "type": "string" },
        "model": nullable("string"),
        "usage": { "oneOf": [
            { "type": "null" },
            object(json!({ "prompt_tokens": { "type": "integer" }, "completion_tokens": { "type": "integer" } })),
        ] },
        "created_at": time(),
    }));
    let audit = object(json!({
        "position": { "type": "integer" },
        "at": time(),
        "actor": { "type": "string" },
        "role": { "type": "string" },
        "action": { "type": "string" },
        "target": nullable("string"),
        "outcome": { "type": "string" },
        "reason": nullable("string"),
        "request_id": { "type": "string" },
        "source_ip": nullable("string"),
    }));
    let quota = object(json!({
        "limit": { "type": "string" },
        "used": { "type": "integer" },
        "max": { "type": "integer" },
        "remaining": { "type": "integer" },
        "resets_at": { "type": ["string", "null"], "format": "date-time" },
    }));
    let usage_line = object(json!({
        "day": nullable("string"),
        "model": { "type": "string" },
        "prompt_tokens": { "type": "integer" },
        "completion_tokens": { "type": "integer" },
        "requests": { "type": "integer" },
        "cost": { "type": "string", "description": "exact decimal" },
        "unpriced": { "type": "boolean" },
    }));
    let usage = object(json!({
        "from": { "type": "string", "format": "date" },
        "to": { "type": "string", "format": "date" },
        "by_day": { "type": "array", "items": { "$ref": "#/components/schemas/UsageLine" } },
        "by_model": { "type": "array", "items": { "$ref": "#/components/schemas/UsageLine" } },
        "total_tokens": { "type": "integer" },
        "total_cost": { "type": "string" },
    }));
    let tenant_usage = object(json!({
        "tenant_id": { "type": "string", "format": "uuid" },
        "slug": { "type": "string" },
        "name": { "type": "string" },
        "prompt_tokens": { "type": "integer" },
        "completion_tokens": { "type": "integer" },
        "requests": { "type": "integer" },
        "cost": { "type": "string", "description": "exact decimal" },
    }));
    let partner_usage = object(json!({
        "partner_id": { "type": "string", "format": "uuid" },
        "from": { "type": "string", "format": "date" },
        "to": { "type": "string", "format": "date" },
        "tenants": { "type": "array", "items": { "$ref": "#/components/schemas/TenantUsage" } },
        "prompt_tokens": { "type": "integer" },
        "completion_tokens": { "type": "integer" },
        "requests": { "type": "integer" },
        "total_cost": { "type": "string", "description": "exact decimal" },
    }));
    let problem = json!({
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": { "type": "string" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "code": { "type": "string", "enum": [
                "bad_request", "invalid_cursor", "unauthorized", "forbidden", "insufficient_scope", "not_found",
                "method_not_allowed", "request_timeout", "conflict", "payload_too_large", "uri_too_long",
                "validation_failed", "model_not_allowed", "idempotency_key_reused", "limit_exceeded", "headers_too_large",
                "unavailable", "internal"
            ] },
            "detail": { "type": "string" },
            "field": { "type": "string", "description": "the field at fault, where there is one" },
            "limit": { "type": "string" },
            "max": { "type": "integer" },
            "scope": { "type": "string", "description": "the scope the key lacks (`insufficient_scope`)" },
        },
    });
    let mut out = Map::new();
    for (name, schema) in [
        ("Problem", problem),
        ("Settings", settings),
        ("Tenant", tenant.clone()),
        ("TenantPage", page("Tenant")),
        ("Partner", partner.clone()),
        ("PartnerWithKey", with_key(&partner)),
        ("PartnerPage", page("Partner")),
        ("Credential", credential),
        ("AgentRuntime", runtime),
        ("CredentialPage", page("Credential")),
        (
            "Document",
            object(json!({
                "id": { "type": "string", "format": "uuid" },
                "title": { "type": "string" },
                "content_type": { "type": "string", "enum": tenantry_domain::document::CONTENT_TYPES },
                "metadata": { "type": "object" },
                "size": { "type": "integer", "minimum": 0, "description": "bytes of the body, counted toward `storage_bytes`" },
                "sha256": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                "chunks": { "type": "integer", "minimum": 0 },
                "created_at": time(),
            })),
        ),
        ("DocumentPage", page("Document")),
        ("PriceTable", price_table()),
        ("LegalHold", object(json!({ "held": { "type": "boolean" }, "position": { "type": "integer" } }))),
        (
            "ProjectionStatus",
            object(json!({
                "items": { "type": "array", "items": object(json!({
                    "projector": { "type": "string" },
                    "tenants": { "type": "integer", "minimum": 0 },
                    "tenants_behind": { "type": "integer", "minimum": 0 },
                    "lag_events": { "type": "integer", "minimum": 0 },
                    "stalled": { "type": "array", "items": object(json!({
                        "tenant": { "type": "string" },
                        "position": { "type": "integer", "minimum": 0 },
                        "reason": { "type": "string" },
                    })) },
                })) },
            })),
        ),
        (
            "Rebuilt",
            object(
                json!({ "tenant_id": { "type": "string", "format": "uuid" }, "events": { "type": "integer", "minimum": 0 } }),
            ),
        ),
        (
            "Retention",
            object(json!({ "conversations_days": nullable("integer"), "legal_hold": { "type": "boolean" } })),
        ),
        (
            "RetentionWritten",
            object(json!({
                "conversations_days": nullable("integer"),
                "legal_hold": { "type": "boolean" },
                "position": { "type": "integer" },
            })),
        ),
        (
            "PriceHistory",
            object(
                json!({ "items": { "type": "array", "items": { "$ref": "#/components/schemas/PriceTable" } } }),
            ),
        ),
        (
            "BudgetStanding",
            object(json!({
                "budget": {
                    "oneOf": [
                        { "type": "null" },
                        object(json!({
                            "monthly": { "type": "string" },
                            "currency": { "type": "string" },
                            "alert_at": { "type": "array", "items": { "type": "number" } },
                            "hard_stop": { "type": "boolean" },
                        })),
                    ]
                },
                "month": { "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$" },
                "spent": { "type": "string", "description": "the month's recorded cost so far" },
                "crossed": { "type": "array", "items": { "type": "number" } },
            })),
        ),
        ("AnalyticsFigures", analytics_figures(false)),
        (
            "Analytics",
            object(json!({
                "from": { "type": "string", "format": "date" },
                "to": { "type": "string", "format": "date" },
                "group_by": { "type": "string", "enum": ["day", "agent", "user", "model", "tenant"] },
                "currency": { "type": "string" },
                "groups": { "type": "array", "items": analytics_figures(true) },
                "totals": { "$ref": "#/components/schemas/AnalyticsFigures" },
            })),
        ),
        ("Webhook", webhook.clone()),
        ("WebhookWithSecret", with_secret(&webhook)),
        ("WebhookPage", page("Webhook")),
        (
            "Delivery",
            object(json!({
                "position": { "type": "integer", "minimum": 1 },
                "message_id": { "type": "string", "description": "the `webhook-id` sent" },
                "event_type": { "type": "string" },
                "status": { "type": "string", "enum": ["delivered", "retrying", "failed"] },
                "attempts": { "type": "integer", "minimum": 1 },
                "response_status": nullable("integer"),
                "latency_ms": nullable("integer"),
                "error": nullable("string"),
                "first_attempt_at": time(),
                "last_attempt_at": time(),
            })),
        ),
        ("DeliveryPage", page("Delivery")),
        (
            "LogEvent",
            object(json!({
                "position": { "type": "integer", "minimum": 1 },
                "stream": { "type": "string" },
                "version": { "type": "integer", "minimum": 1 },
                "event_id": { "type": "string", "format": "uuid" },
                "type": { "type": "string" },
                "schema_version": { "type": "integer", "minimum": 1 },
                "recorded_at": time(),
                "data": { "type": "object" },
                "metadata": { "type": "object" },
            })),
        ),
        (
            "EventPage",
            object(json!({
                "items": { "type": "array", "items": { "$ref": "#/components/schemas/LogEvent" } },
                "next_after": { "type": ["integer", "null"], "description": "the position to ask after next; null when the page reached the head" },
            })),
        ),
        (
            "SearchResults",
            object(json!({
                "items": { "type": "array", "items": object(json!({
                    "document_id": { "type": "string", "format": "uuid" },
                    "title": { "type": "string" },
                    "chunk": { "type": "integer", "minimum": 0 },
                    "score": { "type": "number" },
                    "snippet": { "type": "string", "description": "the best passage, matched words between `**`" },
                })) },
            })),
        ),
        ("Operator", operator.clone()),
        ("OperatorWithKey", with_key(&operator)),
        ("OperatorPage", page("Operator")),
        ("Position", object(json!({ "position": { "type": "integer" } }))),
        ("ApiKey", api_key.clone()),
        ("ApiKeyWithKey", with_key(&api_key)),
        ("ApiKeyPage", page("ApiKey")),
        ("Agent", agent),
        ("AgentPage", page("Agent")),
        ("User", user),
        ("UserPage", page("User")),
        ("Tool", tool),
        ("ToolPage", page("Tool")),
        ("Conversation", conversation),
        ("ConversationPage", page("Conversation")),
        ("Message", message),
        ("MessagePage", page("Message")),
        ("AuditEntry", audit),
        ("AuditPage", page("AuditEntry")),
        ("Quota", quota),
        ("QuotaPage", page("Quota")),
        ("UsageLine", usage_line),
        ("UsageReport", usage),
        ("EffectiveSettings", effective_settings()),
        (
            "SettingsAnswer",
            json!({ "oneOf": [
                { "$ref": "#/components/schemas/Settings" },
                { "$ref": "#/components/schemas/EffectiveSettings" },
            ] }),
        ),
        ("TenantUsage", tenant_usage),
        ("PartnerUsage", partner_usage),
        (
            "RotatedKey",
            object(json!({
                "id": { "type": "string", "format": "uuid" },
                "position": { "type": "integer" },
                "key": { "type": "string", "description": "the new secret, shown once" },
            })),
        ),
        ("Accepted", object(json!({ "id": { "type": "string" } }))),
        ("Written", object(json!({ "id": { "type": "string" }, "position": { "type": "integer" } }))),
        ("Recorded", object(json!({ "position": { "type": "integer" }, "recorded": { "type": "boolean" } }))),
        (
            "Purge",
            json!({ "type": "object", "required": ["step"], "properties": { "step": { "type": "string" } } }),
        ),
    ] {
        out.insert(name.to_owned(), schema);
    }
    out
}
