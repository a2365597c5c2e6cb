//! Values of read-model columns that hold personal or secret text (messages, titles, emails,
//! system prompts, tool descriptions), sealed so that a read model's dead rows, its WAL and
//! its backups hold only ciphertext: under the keys of the person and conversation they
//! belong to (innermost first), then under the tenant's data key. A purge, an erasure or a
//! conversation's deletion destroys a key, and the value is unreadable wherever it was copied.

use base64::Engine as _;

use super::*;

/// What a sealed value starts with; a value without it is plaintext written before sealing
/// (or the `[erased]` an erasure writes), returned as it is. A sealed value is
/// `sealed:v1:<layer ids, hex, dot-separated>:<ciphertext, base64>`: the ids of the person and
/// conversation keys it was sealed with travel with it (they are no secret).
pub const SEALED_VALUE_PREFIX: &str = "sealed:v1:";

impl EventStore {
    /// `text` sealed for a read-model column of the tenant, under the keys of `layers`
    /// (persons', conversations'; innermost first) and then the tenant's data key. A value
    /// whose key is destroyed (the person erased, the conversation deleted, the tenant
    /// purged) is `[erased]`.
    pub async fn seal_value(
        &self,
        tenant: TenantId,
        layers: &[uuid::Uuid],
        text: &str,
    ) -> Result<String, StoreError> {
        let mut sealed = text.as_bytes().to_vec();
        let mut used = Vec::with_capacity(layers.len());
        for subject in layers {
            // No key is minted here (a projector seals inside its own write transaction):
            // a person or conversation that never had one (events from before such keys)
            // is sealed under the others.
            let key = match self.vault.cached_subject(tenant, *subject) {
                Some(key) => key,
                None => match self.keys.load_subject_key(tenant, *subject).await? {
                    StoredKey::Missing => continue,
                    StoredKey::Destroyed => return Ok(tenantry_domain::personal::ERASED.to_owned()),
                    StoredKey::Wrapped(wrapped) => {
                        self.vault.unwrap_subject(tenant, *subject, &wrapped).await?
                    }
                },
            };
            sealed = key.seal(&sealed);
            used.push(*subject);
        }
        let key = match self.key(tenant, false).await {
            Ok(key) => key,
            Err(StoreError::KeyDestroyed { .. }) => return Ok(tenantry_domain::personal::ERASED.to_owned()),
            Err(e) => return Err(e),
        };
        let sealed = key.seal_value(&sealed);
        let ids: Vec<String> = used.iter().map(|l| l.simple().to_string()).collect();
        Ok(format!(
            "{SEALED_VALUE_PREFIX}{}:{}",
            ids.join("."),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(sealed)
        ))
    }

    /// A read-model value as text: opened when sealed (outermost key first), `[erased]` when
    /// a key that sealed it is destroyed, as it is when it was never sealed.
    pub async fn open_value(&self, tenant: TenantId, stored: &str) -> Result<String, StoreError> {
        let Some(rest) = stored.strip_prefix(SEALED_VALUE_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let tampered = || StoreError::Tampered { tenant, position: 0 };
        let (ids, encoded) = rest.split_once(':').ok_or_else(tampered)?;
        let layers = ids
            .split('.')
            .filter(|id| !id.is_empty())
            .map(|id| uuid::Uuid::parse_str(id).map_err(|_| tampered()))
            .collect::<Result<Vec<_>, _>>()?;
        let bytes =
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded).map_err(|_| tampered())?;
        let key = match self.key(tenant, false).await {
            Ok(key) => key,
            Err(StoreError::KeyDestroyed { .. }) => return Ok(tenantry_domain::personal::ERASED.to_owned()),
            Err(e) => return Err(e),
        };
        let mut opened = key.open_value(&bytes).ok_or_else(tampered)?;
        for subject in layers.iter().rev() {
            match self.subject_key(tenant, *subject, super::Missing::None).await? {
                Some(key) => opened = key.open(&opened).ok_or_else(tampered)?,
                None => return Ok(tenantry_domain::personal::ERASED.to_owned()),
            }
        }
        String::from_utf8(opened).map_err(|_| tampered())
    }
}
