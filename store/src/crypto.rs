//! Per-tenant encryption: a data key per tenant, wrapped by a master key from config.
//! Destroying a tenant's wrapped key makes every copy of its ciphertext unreadable.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use tenantry_domain::{EventId, StreamId, TenantId};
use zeroize::Zeroizing;

use crate::error::StoreError;

const NONCE_LEN: usize = 24;

/// The key that wraps every tenant's data key. 32 bytes, kept as hex in a file or variable.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        Self(Zeroizing::new(key.into()))
    }

    pub fn from_hex(text: &str) -> Result<Self, StoreError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut bytes[..])
            .map_err(|_| StoreError::MasterKey("expected 64 hex characters".into()))?;
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }

    /// A 32-byte key for another purpose (`label`), derived from the master key, so the
    /// master key itself never leaves the vault: HMAC-SHA256(master, label).
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.0[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"tenantry/derive/v1/");
        mac.update(label.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// Read the key from `path`, or create it there (mode 0600) when the file does not exist.
    /// Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), StoreError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::from_hex(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path)?;
                std::io::Write::write_all(&mut file, key.to_hex().as_bytes())?;
                file.sync_all()?;
                Ok((key, true))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Which part of an event a ciphertext holds; bound into its associated data.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    Payload = 1,
    Metadata = 2,
    /// A body kept beside the log (its id stands in the event's place).
    Blob = 3,
}

/// Associated data: the ciphertext only opens for this tenant, stream, event and part, so a
/// ciphertext moved to another row does not authenticate.
fn event_aad(tenant: TenantId, stream: &str, event: EventId, part: Part) -> Vec<u8> {
    let mut aad = Vec::with_capacity(34 + stream.len());
    aad.extend_from_slice(b"tenantry/event/v1");
    aad.extend_from_slice(tenant.as_uuid().as_bytes());
    aad.extend_from_slice(event.as_uuid().as_bytes());
    aad.push(part as u8);
    aad.extend_from_slice(stream.as_bytes());
    aad
}

fn seal(cipher: &XChaCha20Poly1305, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    // A thread-local CSPRNG seeded from the OS: 192-bit random nonces need no uniqueness
    // bookkeeping, and this avoids a system call per ciphertext.
    let nonce = XChaCha20Poly1305::generate_nonce(&mut rand::thread_rng());
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    out.extend_from_slice(&nonce);
    // Encryption with a fresh nonce and an in-memory buffer cannot fail.
    let sealed = cipher.encrypt(&nonce, Payload { msg: plaintext, aad }).unwrap_or_default();
    out.extend_from_slice(&sealed);
    out
}

fn open(cipher: &XChaCha20Poly1305, data: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if data.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, ciphertext) = data.split_at(NONCE_LEN);
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad }).ok()
}

/// One tenant's data key.
pub(crate) struct DataKey {
    tenant: TenantId,
    cipher: XChaCha20Poly1305,
}

impl DataKey {
    pub(crate) fn seal(&self, stream: &StreamId, event: EventId, part: Part, plaintext: &[u8]) -> Vec<u8> {
        seal(&self.cipher, plaintext, &event_aad(self.tenant, stream.as_str(), event, part))
    }

    pub(crate) fn open(
        &self,
        stream: &str,
        event: EventId,
        part: Part,
        data: &[u8],
        position: u64,
    ) -> Result<Vec<u8>, StoreError> {
        open(&self.cipher, data, &event_aad(self.tenant, stream, event, part))
            .ok_or(StoreError::Tampered { tenant: self.tenant, position })
    }
}

impl DataKey {
    /// Seal a body kept beside the log: it opens only as this tenant's blob `id`.
    pub(crate) fn seal_blob(&self, id: uuid::Uuid, plaintext: &[u8]) -> Vec<u8> {
        seal(&self.cipher, plaintext, &event_aad(self.tenant, "blob", EventId::from_uuid(id), Part::Blob))
    }

    pub(crate) fn open_blob(&self, id: uuid::Uuid, data: &[u8]) -> Option<Vec<u8>> {
        open(&self.cipher, data, &event_aad(self.tenant, "blob", EventId::from_uuid(id), Part::Blob))
    }
}

impl DataKey {
    /// Seal a value of a read-model column: it opens only for this tenant's read models.
    pub(crate) fn seal_value(&self, plaintext: &[u8]) -> Vec<u8> {
        seal(&self.cipher, plaintext, &value_aad(self.tenant))
    }

    pub(crate) fn open_value(&self, data: &[u8]) -> Option<Vec<u8>> {
        open(&self.cipher, data, &value_aad(self.tenant))
    }
}

fn value_aad(tenant: TenantId) -> Vec<u8> {
    [b"tenantry/read-model/v1".as_slice(), tenant.as_uuid().as_bytes()].concat()
}

/// One person's data key inside a tenant: seals their personal values.
pub(crate) struct SubjectKey {
    tenant: TenantId,
    subject: uuid::Uuid,
    cipher: XChaCha20Poly1305,
}

fn personal_aad(tenant: TenantId, subject: uuid::Uuid) -> Vec<u8> {
    [b"tenantry/personal/v1".as_slice(), tenant.as_uuid().as_bytes(), subject.as_bytes()].concat()
}

impl SubjectKey {
    pub(crate) fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        seal(&self.cipher, plaintext, &personal_aad(self.tenant, self.subject))
    }

    /// The plaintext, or `None` when the bytes do not authenticate under this key.
    pub(crate) fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        open(&self.cipher, sealed, &personal_aad(self.tenant, self.subject))
    }
}

/// Wraps data keys for storage and unwraps them again. The local master key
/// ([`LocalKeyWrapper`]) is one implementation; a key management service can be another,
/// given to [`crate::EventStore::with_key_wrapper`], without touching the store. `context`
/// names what the key is for (the tenant, the person): a wrapped key only unwraps for it.
#[async_trait::async_trait]
pub trait KeyWrapper: Send + Sync {
    async fn wrap(&self, key: &[u8], context: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// `None` when the bytes do not unwrap under this wrapper for this context.
    async fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError>;
}

/// Data keys wrapped with the local master key (XChaCha20-Poly1305, the context as
/// associated data).
pub struct LocalKeyWrapper(XChaCha20Poly1305);

impl std::fmt::Debug for LocalKeyWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKeyWrapper(..)")
    }
}

impl LocalKeyWrapper {
    pub fn new(master: &MasterKey) -> Self {
        Self(XChaCha20Poly1305::new((&*master.0).into()))
    }
}

#[async_trait::async_trait]
impl KeyWrapper for LocalKeyWrapper {
    async fn wrap(&self, key: &[u8], context: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(seal(&self.0, key, context))
    }

    async fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(open(&self.0, wrapped, context).map(Zeroizing::new))
    }
}

/// Wraps and unwraps tenant and person data keys, and caches the unwrapped ones.
pub(crate) struct KeyVault {
    wrapper: Arc<dyn KeyWrapper>,
    // Guards only the map; never held across an await.
    cache: RwLock<HashMap<TenantId, Arc<DataKey>>>,
    // Keyed by (tenant, person). Guards only the map; never held across an await.
    subjects: RwLock<HashMap<(TenantId, uuid::Uuid), Arc<SubjectKey>>>,
}

pub(crate) fn subject_wrap_aad(tenant: TenantId, subject: uuid::Uuid) -> Vec<u8> {
    [b"tenantry/subject-dek/v1".as_slice(), tenant.as_uuid().as_bytes(), subject.as_bytes()].concat()
}

pub(crate) fn wrap_aad(tenant: TenantId) -> Vec<u8> {
    [b"tenantry/dek/v1".as_slice(), tenant.as_uuid().as_bytes()].concat()
}

impl KeyVault {
    pub(crate) fn new(wrapper: Arc<dyn KeyWrapper>) -> Self {
        Self { wrapper, cache: RwLock::new(HashMap::new()), subjects: RwLock::new(HashMap::new()) }
    }

    pub(crate) fn wrapper(&self) -> &Arc<dyn KeyWrapper> {
        &self.wrapper
    }

    pub(crate) fn cached(&self, tenant: TenantId) -> Option<Arc<DataKey>> {
        self.cache.read().ok()?.get(&tenant).cloned()
    }

    /// A new data key for `tenant`, wrapped for storage.
    pub(crate) async fn new_wrapped(&self, tenant: TenantId) -> Result<Vec<u8>, StoreError> {
        let key: Zeroizing<[u8; 32]> = Zeroizing::new(XChaCha20Poly1305::generate_key(&mut OsRng).into());
        self.wrapper.wrap(&key[..], &wrap_aad(tenant)).await
    }

    /// Unwrap a stored key and cache it.
    pub(crate) async fn unwrap(&self, tenant: TenantId, wrapped: &[u8]) -> Result<Arc<DataKey>, StoreError> {
        let raw = self
            .wrapper
            .unwrap(wrapped, &wrap_aad(tenant))
            .await?
            .ok_or(StoreError::WrongMasterKey { tenant })?;
        let cipher =
            XChaCha20Poly1305::new_from_slice(&raw).map_err(|_| StoreError::WrongMasterKey { tenant })?;
        let key = Arc::new(DataKey { tenant, cipher });
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(tenant, key.clone());
        }
        Ok(key)
    }

    pub(crate) fn forget(&self, tenant: TenantId) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(&tenant);
        }
        if let Ok(mut subjects) = self.subjects.write() {
            subjects.retain(|(t, _), _| *t != tenant);
        }
    }

    pub(crate) fn cached_subject(&self, tenant: TenantId, subject: uuid::Uuid) -> Option<Arc<SubjectKey>> {
        self.subjects.read().ok()?.get(&(tenant, subject)).cloned()
    }

    /// A new data key for a person, wrapped for storage and ready to seal with, not cached:
    /// cached once stored (by the append that first uses it, [`KeyVault::remember_subject`],
    /// or loaded again after it was stored on its own).
    pub(crate) async fn mint_subject(
        &self,
        tenant: TenantId,
        subject: uuid::Uuid,
    ) -> Result<(Vec<u8>, Arc<SubjectKey>), StoreError> {
        let key: Zeroizing<[u8; 32]> = Zeroizing::new(XChaCha20Poly1305::generate_key(&mut OsRng).into());
        let wrapped = self.wrapper.wrap(&key[..], &subject_wrap_aad(tenant, subject)).await?;
        let cipher = XChaCha20Poly1305::new((&*key).into());
        Ok((wrapped, Arc::new(SubjectKey { tenant, subject, cipher })))
    }

    /// Cache a minted key once the append that stored it is written.
    pub(crate) fn remember_subject(&self, key: &Arc<SubjectKey>) {
        if let Ok(mut subjects) = self.subjects.write() {
            subjects.entry((key.tenant, key.subject)).or_insert_with(|| key.clone());
        }
    }

    pub(crate) async fn unwrap_subject(
        &self,
        tenant: TenantId,
        subject: uuid::Uuid,
        wrapped: &[u8],
    ) -> Result<Arc<SubjectKey>, StoreError> {
        let raw = self
            .wrapper
            .unwrap(wrapped, &subject_wrap_aad(tenant, subject))
            .await?
            .ok_or(StoreError::WrongMasterKey { tenant })?;
        let cipher =
            XChaCha20Poly1305::new_from_slice(&raw).map_err(|_| StoreError::WrongMasterKey { tenant })?;
        let key = Arc::new(SubjectKey { tenant, subject, cipher });
        if let Ok(mut subjects) = self.subjects.write() {
            subjects.insert((tenant, subject), key.clone());
        }
        Ok(key)
    }

    pub(crate) fn forget_subject(&self, tenant: TenantId, subject: uuid::Uuid) {
        if let Ok(mut subjects) = self.subjects.write() {
            subjects.remove(&(tenant, subject));
        }
    }
}
