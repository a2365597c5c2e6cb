//! What an agent runtime is handed: the system prompt with its variables filled in, and the
//! provider a model is called through.

/// The values a system prompt's variables stand for
/// ([`crate::validate::PROMPT_VARIABLES`]).
#[derive(Debug, Clone, Copy)]
pub struct PromptValues<'a> {
    pub tenant_name: &'a str,
    pub tenant_slug: &'a str,
    pub agent_name: &'a str,
    /// The text of the `custom` settings in effect.
    pub custom: Option<&'a str>,
}

/// The prompt with every known `{{…}}` replaced (prompts are checked when written, so
/// anything else is left as it stands).
pub fn render_prompt(template: &str, values: PromptValues<'_>) -> String {
    let custom = crate::command::custom_object(values.custom);
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        match after[..end].trim() {
            "tenant.name" => out.push_str(values.tenant_name),
            "tenant.slug" => out.push_str(values.tenant_slug),
            "agent.name" => out.push_str(values.agent_name),
            name => match name.strip_prefix("settings.custom.").and_then(|key| custom.get(key)) {
                // A string as it is; any other JSON value as its JSON text.
                Some(serde_json::Value::String(text)) => out.push_str(text),
                Some(other) => out.push_str(&other.to_string()),
                None => out.push_str(&rest[start..start + 2 + end + 2]),
            },
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The provider a model is called through, from its name: `gpt-…`, `o1…`, `o3…`, `o4…` and
/// `text-embedding-…` are OpenAI's, `claude-…` Anthropic's, `gemini-…` Google's; anything else
/// is `custom`.
pub fn provider_of(model: &str) -> &'static str {
    let m = model.to_ascii_lowercase();
    if m.starts_with("gpt")
        || m.starts_with("o1")
        || m.starts_with("o3")
        || m.starts_with("o4")
        || m.starts_with("text-embedding")
    {
        "openai"
    } else if m.starts_with("claude") {
        "anthropic"
    } else if m.starts_with("gemini") {
        "google"
    } else {
        "custom"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_filled_in_and_nothing_else_changes() {
        let custom = r#"{"default_language":"de","max_turns":3}"#;
        let values = PromptValues {
            tenant_name: "Acme",
            tenant_slug: "acme",
            agent_name: "Ava",
            custom: Some(custom),
        };
        assert_eq!(
            render_prompt("You are {{agent.name}} of {{ tenant.name }} ({{tenant.slug}}). {{x}} {{", values),
            "You are Ava of Acme (acme). {{x}} {{"
        );
        assert_eq!(
            render_prompt(
                "Answer in {{settings.custom.default_language}}, {{settings.custom.max_turns}} turns.",
                values
            ),
            "Answer in de, 3 turns."
        );
        assert_eq!(render_prompt("plain", values), "plain");
    }

    #[test]
    fn models_map_to_their_providers() {
        assert_eq!(provider_of("gpt-4o"), "openai");
        assert_eq!(provider_of("o3-mini"), "openai");
        assert_eq!(provider_of("claude-sonnet-4"), "anthropic");
        assert_eq!(provider_of("gemini-2.0-flash"), "google");
        assert_eq!(provider_of("llama-3"), "custom");
    }
}
