//! What a tenant key may be narrowed to. A key without scopes may do all its role allows; a
//! key with scopes may do only what they name, and never more than its role allows.

/// One permission a tenant key can carry. The names are persisted in `apikey.issued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    TenantRead,
    SettingsRead,
    SettingsWrite,
    AgentsRead,
    AgentsWrite,
    ToolsRead,
    ToolsWrite,
    UsersRead,
    UsersWrite,
    KeysRead,
    KeysWrite,
    CredentialsRead,
    CredentialsWrite,
    DocumentsRead,
    DocumentsWrite,
    ConversationsRead,
    ConversationsWrite,
    UsageRead,
    UsageWrite,
    AuditRead,
    ExportRead,
    RuntimeRead,
    EventsRead,
    WebhooksRead,
    WebhooksWrite,
}

impl Scope {
    /// Every scope, in the order the API documents them.
    pub const ALL: [Self; 25] = [
        Self::TenantRead,
        Self::SettingsRead,
        Self::SettingsWrite,
        Self::AgentsRead,
        Self::AgentsWrite,
        Self::ToolsRead,
        Self::ToolsWrite,
        Self::UsersRead,
        Self::UsersWrite,
        Self::KeysRead,
        Self::KeysWrite,
        Self::CredentialsRead,
        Self::CredentialsWrite,
        Self::DocumentsRead,
        Self::DocumentsWrite,
        Self::ConversationsRead,
        Self::ConversationsWrite,
        Self::UsageRead,
        Self::UsageWrite,
        Self::AuditRead,
        Self::ExportRead,
        Self::RuntimeRead,
        Self::EventsRead,
        Self::WebhooksRead,
        Self::WebhooksWrite,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TenantRead => "tenant:read",
            Self::SettingsRead => "settings:read",
            Self::SettingsWrite => "settings:write",
            Self::AgentsRead => "agents:read",
            Self::AgentsWrite => "agents:write",
            Self::ToolsRead => "tools:read",
            Self::ToolsWrite => "tools:write",
            Self::UsersRead => "users:read",
            Self::UsersWrite => "users:write",
            Self::KeysRead => "keys:read",
            Self::KeysWrite => "keys:write",
            Self::CredentialsRead => "credentials:read",
            Self::CredentialsWrite => "credentials:write",
            Self::DocumentsRead => "documents:read",
            Self::DocumentsWrite => "documents:write",
            Self::ConversationsRead => "conversations:read",
            Self::ConversationsWrite => "conversations:write",
            Self::UsageRead => "usage:read",
            Self::UsageWrite => "usage:write",
            Self::AuditRead => "audit:read",
            Self::ExportRead => "export:read",
            Self::RuntimeRead => "runtime:read",
            Self::EventsRead => "events:read",
            Self::WebhooksRead => "webhooks:read",
            Self::WebhooksWrite => "webhooks:write",
        }
    }

    /// What the scope lets a key do, for the API description.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::TenantRead => "read the tenant itself and its quotas",
            Self::SettingsRead => "read the tenant's settings",
            Self::SettingsWrite => "change the tenant's settings",
            Self::AgentsRead => "list and read agents",
            Self::AgentsWrite => "create, change and archive agents",
            Self::ToolsRead => "list and read tools",
            Self::ToolsWrite => "register, change and remove tools",
            Self::UsersRead => "list and read users",
            Self::UsersWrite => "add, change, remove and erase users",
            Self::KeysRead => "list and read API keys",
            Self::KeysWrite => "issue, rotate and revoke API keys",
            Self::CredentialsRead => "list and read provider credentials (never their secrets)",
            Self::CredentialsWrite => "add, rotate and remove provider credentials",
            Self::DocumentsRead => "list, read and search the knowledge base",
            Self::DocumentsWrite => "add and delete knowledge base documents",
            Self::ConversationsRead => "list and read conversations and messages",
            Self::ConversationsWrite => "open conversations and append messages",
            Self::UsageRead => "read usage and cost reports",
            Self::UsageWrite => "record usage",
            Self::AuditRead => "read the audit trail",
            Self::ExportRead => "download the tenant's export",
            Self::RuntimeRead => "read an agent's runtime configuration, secrets included",
            Self::EventsRead => "follow the tenant's log: the event feed and its stream",
            Self::WebhooksRead => "list webhook endpoints and their delivery logs",
            Self::WebhooksWrite => "create, change, rotate, redeliver and remove webhook endpoints",
        }
    }

    /// The scope an [`Scope::as_str`] name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_parses_from_its_name_and_names_are_unique() {
        let mut names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Scope::ALL.len());
        assert_eq!(Scope::parse("conversations:delete"), None);
    }
}
