//! Which scope each tenant route needs of a scoped key: by the section of the path after
//! `/v1/tenants/{tenant_id}` and by whether the request reads (GET) or writes.

use axum::http::Method;
use tenantry_domain::Scope;

/// A section of the tenant routes and the scopes that read and write it.
const SECTIONS: &[(&str, Scope, Scope)] = &[
    ("", Scope::TenantRead, Scope::SettingsWrite),
    ("quotas", Scope::TenantRead, Scope::SettingsWrite),
    ("settings", Scope::SettingsRead, Scope::SettingsWrite),
    ("suspend", Scope::TenantRead, Scope::SettingsWrite),
    ("resume", Scope::TenantRead, Scope::SettingsWrite),
    ("agents", Scope::AgentsRead, Scope::AgentsWrite),
    ("tools", Scope::ToolsRead, Scope::ToolsWrite),
    ("users", Scope::UsersRead, Scope::UsersWrite),
    ("api-keys", Scope::KeysRead, Scope::KeysWrite),
    ("credentials", Scope::CredentialsRead, Scope::CredentialsWrite),
    ("documents", Scope::DocumentsRead, Scope::DocumentsWrite),
    ("conversations", Scope::ConversationsRead, Scope::ConversationsWrite),
    ("usage", Scope::UsageRead, Scope::UsageWrite),
    ("analytics", Scope::UsageRead, Scope::UsageRead),
    ("budget", Scope::UsageRead, Scope::SettingsWrite),
    ("legal-hold", Scope::TenantRead, Scope::SettingsWrite),
    ("retention", Scope::SettingsRead, Scope::SettingsWrite),
    ("audit", Scope::AuditRead, Scope::AuditRead),
    ("export", Scope::ExportRead, Scope::ExportRead),
    ("events", Scope::EventsRead, Scope::EventsRead),
    ("webhooks", Scope::WebhooksRead, Scope::WebhooksWrite),
];

/// The scope a request to `route` (a route template such as
/// `/v1/tenants/{tenant_id}/agents/{agent_id}`) needs; `None` outside the tenant routes.
/// A tenant route of a section not listed needs a scope no key can hold, so a scoped key
/// is refused there rather than let through.
pub fn needed(method: &Method, route: &str) -> Option<Result<Scope, ()>> {
    let rest = route.strip_prefix("/v1/tenants/{tenant_id}")?;
    // What an agent runtime reads (secrets included) is a scope of its own.
    if rest.ends_with("/runtime") {
        return Some(Ok(Scope::RuntimeRead));
    }
    // A person's export holds their conversations too: the export scope, not the users'.
    if rest.ends_with("/export") {
        return Some(Ok(Scope::ExportRead));
    }
    let section = rest.trim_start_matches('/').split('/').next().unwrap_or_default();
    let read = method == Method::GET || method == Method::HEAD;
    Some(
        SECTIONS
            .iter()
            .find(|(name, ..)| *name == section)
            .map(|(_, r, w)| if read { *r } else { *w })
            .ok_or(()),
    )
}

/// Whether a key narrowed to `held` (empty: not narrowed) may make this request; the
/// scope it lacks when not.
pub fn check(held: &[Scope], method: &Method, route: &str) -> Result<(), Option<Scope>> {
    if held.is_empty() {
        return Ok(());
    }
    match needed(method, route) {
        None => Ok(()),
        Some(Ok(scope)) if held.contains(&scope) => Ok(()),
        Some(Ok(scope)) => Err(Some(scope)),
        Some(Err(())) => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tenant_route_of_the_api_needs_a_known_scope() {
        let doc = crate::http::openapi();
        let paths =
            doc["paths"].as_object().map(|p| p.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
        let tenant_routes: Vec<&String> =
            paths.iter().filter(|p| p.starts_with("/v1/tenants/{tenant_id}")).collect();
        assert!(tenant_routes.len() > 20, "{tenant_routes:?}");
        for path in tenant_routes {
            for method in [Method::GET, Method::POST] {
                assert!(matches!(needed(&method, path), Some(Ok(_))), "{method} {path} has no scope");
            }
        }
        assert_eq!(needed(&Method::GET, "/v1/me"), None);
        assert_eq!(
            needed(&Method::GET, "/v1/tenants/{tenant_id}/agents/{agent_id}"),
            Some(Ok(Scope::AgentsRead))
        );
        assert_eq!(
            needed(&Method::PATCH, "/v1/tenants/{tenant_id}/agents/{agent_id}"),
            Some(Ok(Scope::AgentsWrite))
        );
        assert_eq!(needed(&Method::GET, "/v1/tenants/{tenant_id}/secrets"), Some(Err(())));
    }

    #[test]
    fn an_unscoped_key_passes_and_a_scoped_one_only_where_it_holds_the_scope() {
        let route = "/v1/tenants/{tenant_id}/conversations/{conversation_id}/messages";
        assert_eq!(check(&[], &Method::POST, route), Ok(()));
        assert_eq!(check(&[Scope::ConversationsWrite], &Method::POST, route), Ok(()));
        assert_eq!(
            check(&[Scope::ConversationsWrite], &Method::GET, route),
            Err(Some(Scope::ConversationsRead))
        );
        assert_eq!(check(&[Scope::UsageWrite], &Method::GET, "/v1/tenants/{tenant_id}/new-thing"), Err(None));
    }
}
