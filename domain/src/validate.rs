//! Bounds on what commands may carry, so no tenant can store unbounded values.

use crate::event::Settings;
use crate::ids::ToolId;
use crate::rejection::Rejection;

pub(crate) fn text(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), Rejection> {
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

pub(crate) fn agent(name: &str, model: &str, prompt: &str, tools: &[ToolId]) -> Result<(), Rejection> {
    text("name", name, 1, 200)?;
    text("model", model, 1, 200)?;
    text("system_prompt", prompt, 0, 100_000)?;
    if tools.len() > 128 {
        return Err(Rejection::invalid("tool_ids", "at most 128 tools"));
    }
    Ok(())
}

pub(crate) fn settings(s: &Settings) -> Result<(), Rejection> {
    if let Some(name) = &s.agent_name {
        text("settings.agent_name", name, 0, 200)?;
    }
    if let Some(prompt) = &s.system_prompt {
        text("settings.system_prompt", prompt, 0, 100_000)?;
    }
    if let Some(model) = &s.default_model {
        text("settings.default_model", model, 1, 200)?;
    }
    if s.allowed_models.len() > 256 || s.feature_flags.len() > 256 {
        return Err(Rejection::invalid("settings", "at most 256 models and 256 feature flags"));
    }
    Ok(())
}
