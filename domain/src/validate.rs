//! Bounds on what commands may carry, so no tenant can store unbounded values, and no value
//! that one of the backends could not store (PostgreSQL refuses U+0000 in text).

use crate::event::{Settings, TokenUsage};
use crate::ids::ToolId;
use crate::limits::LimitOverrides;
use crate::rejection::Rejection;

/// Most tokens one usage record may carry, per kind (prompt, completion): far above any
/// model's window, and low enough that no month's sum can overflow.
pub const MAX_TOKENS_PER_RECORD: u64 = 1_000_000_000_000;

/// Most tools one agent may name.
pub const MAX_AGENT_TOOLS: usize = 128;

pub(crate) fn text(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), Rejection> {
    if value.contains('\0') {
        return Err(Rejection::invalid(field, "must not contain the NUL character (U+0000)"));
    }
    let len = value.chars().count();
    if len < min {
        return Err(Rejection::invalid(field, format!("must be at least {min} characters")));
    }
    if len > max {
        return Err(Rejection::invalid(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

pub(crate) fn slug(value: &str) -> Result<(), Rejection> {
    text("slug", value, 2, 63)?;
    let ok = value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Rejection::invalid("slug", "lowercase letters, digits and inner dashes only"))
    }
}

pub(crate) fn email(value: &str) -> Result<(), Rejection> {
    text("email", value, 3, 320)?;
    match value.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !value.contains(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => Err(Rejection::invalid("email", "not an email address")),
    }
}

pub(crate) fn agent_name(name: &str) -> Result<(), Rejection> {
    text("name", name, 1, 200)
}

pub(crate) fn model(field: &'static str, model: &str) -> Result<(), Rejection> {
    text(field, model, 1, 200)
}

pub(crate) fn system_prompt(field: &'static str, prompt: &str) -> Result<(), Rejection> {
    text(field, prompt, 0, 100_000)
}

pub(crate) fn tool_ids(tools: &[ToolId]) -> Result<(), Rejection> {
    if tools.len() > MAX_AGENT_TOOLS {
        return Err(Rejection::invalid("tool_ids", format!("at most {MAX_AGENT_TOOLS} tools")));
    }
    Ok(())
}

pub(crate) fn tool_description(description: &str) -> Result<(), Rejection> {
    text("description", description, 0, 10_000)
}

pub(crate) fn tool_endpoint(endpoint: &str) -> Result<(), Rejection> {
    text("endpoint", endpoint, 1, 2_000)
}

/// A tool's parameters: a JSON Schema object, as JSON text.
pub(crate) fn tool_parameters(parameters: &str) -> Result<(), Rejection> {
    text("parameters", parameters, 0, 100_000)?;
    match serde_json::from_str::<serde_json::Value>(parameters) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(Rejection::invalid("parameters", "must be a JSON Schema object")),
    }
}

/// The variables a system prompt may hold, filled in when the runtime reads it; besides
/// these, `settings.custom.KEY` for a key of the `custom` settings in effect.
pub const PROMPT_VARIABLES: [&str; 3] = ["tenant.name", "tenant.slug", "agent.name"];

/// Largest `custom` settings object, as JSON text.
pub const MAX_CUSTOM_BYTES: usize = 16 * 1024;

/// Every `{{…}}` of a prompt names a known variable (422 naming the first unknown one);
/// `custom` is the text of the `custom` settings in effect.
pub(crate) fn prompt_variables(
    field: &'static str,
    prompt: &str,
    custom: Option<&str>,
) -> Result<(), Rejection> {
    let custom = crate::command::custom_object(custom);
    let mut rest = prompt;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(Rejection::invalid(field, "a `{{` without its `}}`"));
        };
        let name = after[..end].trim();
        let known = PROMPT_VARIABLES.contains(&name)
            || name.strip_prefix("settings.custom.").is_some_and(|key| custom.contains_key(key));
        if !known {
            let shown: String = name.chars().take(64).collect();
            return Err(Rejection::invalid(field, format!("unknown variable `{{{{{shown}}}}}`")));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

pub(crate) fn settings(s: &Settings) -> Result<(), Rejection> {
    if let Some(name) = &s.agent_name {
        text("settings.agent_name", name, 0, 200)?;
    }
    if let Some(custom) = &s.custom {
        if custom.len() > MAX_CUSTOM_BYTES {
            return Err(Rejection::invalid(
                "settings.custom",
                format!("at most {MAX_CUSTOM_BYTES} bytes as JSON"),
            ));
        }
        if !matches!(serde_json::from_str::<serde_json::Value>(custom), Ok(serde_json::Value::Object(_))) {
            return Err(Rejection::invalid("settings.custom", "a JSON object"));
        }
    }
    if let Some(prompt) = &s.system_prompt {
        system_prompt("settings.system_prompt", prompt)?;
        prompt_variables("settings.system_prompt", prompt, s.custom.as_deref())?;
    }
    if let Some(default) = &s.default_model {
        model("settings.default_model", default)?;
    }
    if s.allowed_models.len() > 256 || s.feature_flags.len() > 256 {
        return Err(Rejection::invalid("settings", "at most 256 models and 256 feature flags"));
    }
    for allowed in &s.allowed_models {
        model("settings.allowed_models", allowed)?;
    }
    for (flag, _) in &s.feature_flags {
        text("settings.feature_flags", flag, 1, 200)?;
    }
    Ok(())
}

/// Every limit has a range; a value outside it is refused before it can reach a rate limiter
/// or a counter.
pub(crate) fn limits(l: &LimitOverrides) -> Result<(), Rejection> {
    let ranges: [(&'static str, Option<u64>, u64, u64); 8] = [
        ("limits.max_agents", l.max_agents, 0, LimitOverrides::MAX_COUNT),
        ("limits.max_users", l.max_users, 0, LimitOverrides::MAX_COUNT),
        ("limits.max_api_keys", l.max_api_keys, 0, LimitOverrides::MAX_COUNT),
        ("limits.api_calls_per_day", l.api_calls_per_day, 0, LimitOverrides::MAX_CALLS_PER_DAY),
        ("limits.tokens_per_month", l.tokens_per_month, 0, LimitOverrides::MAX_TOKENS_PER_MONTH),
        ("limits.storage_bytes", l.storage_bytes, 0, LimitOverrides::MAX_STORAGE_BYTES),
        ("limits.requests_per_minute", l.requests_per_minute, 1, LimitOverrides::MAX_REQUESTS_PER_MINUTE),
        ("limits.max_concurrent_requests", l.max_concurrent_requests, 1, LimitOverrides::MAX_CONCURRENT),
    ];
    for (field, value, min, max) in ranges {
        if let Some(v) = value
            && !(min..=max).contains(&v)
        {
            return Err(Rejection::invalid(field, format!("must be from {min} to {max}")));
        }
    }
    Ok(())
}

pub(crate) fn usage(u: &TokenUsage) -> Result<(), Rejection> {
    for (field, n) in
        [("usage.prompt_tokens", u.prompt_tokens), ("usage.completion_tokens", u.completion_tokens)]
    {
        if n > MAX_TOKENS_PER_RECORD {
            return Err(Rejection::invalid(field, format!("must be at most {MAX_TOKENS_PER_RECORD}")));
        }
    }
    Ok(())
}
