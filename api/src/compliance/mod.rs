//! Compliance work on whole tenants: purge (GDPR erasure), a use case of the application
//! layer ([`tenantry_app::purge`]), here with the broker it needs. Exports live in the store
//! ([`tenantry_store::export`]).

pub use tenantry_app::purge::{BrokerPurge, PurgeError, PurgeReport, PurgeStep, Purger};

/// The JetStream relay's broker, as the purge needs it.
#[async_trait::async_trait]
impl BrokerPurge for crate::relay::Broker {
    async fn purge_tenant(&self, tenant: tenantry_domain::TenantId) -> Result<u64, String> {
        crate::relay::Broker::purge_tenant(self, tenant).await.map_err(|e| format!("{e:#}"))
    }
}

/// A broker, when configured, as the purge takes it.
pub fn broker(broker: Option<crate::relay::Broker>) -> Option<std::sync::Arc<dyn BrokerPurge>> {
    broker.map(|b| std::sync::Arc::new(b) as std::sync::Arc<dyn BrokerPurge>)
}
