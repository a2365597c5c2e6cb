//! API key secrets: only a keyed hash of a secret is stored, and a presented secret is
//! compared with it in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tenantry_domain::ApiKeyId;

/// Hashes secrets with a key derived from the master key.
#[derive(Clone)]
pub struct KeyHasher {
    key: [u8; 32],
    identities: [u8; 32],
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

impl KeyHasher {
    pub fn new(master: &tenantry_store::MasterKey) -> Self {
        Self { key: *master.derive("api-keys"), identities: *master.derive("identities") }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Self::mac_with(&self.key)
    }

    fn mac_with(key: &[u8; 32]) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// The keyed hash that finds an identity provider's subject among a tenant's users,
    /// without the subject itself (which is erasable personal data).
    pub fn identity(&self, issuer: &str, subject: &str) -> Vec<u8> {
        let mut mac = Self::mac_with(&self.identities);
        // Lengths first, so no two (issuer, subject) pairs hash the same bytes.
        mac.update(&(issuer.len() as u64).to_be_bytes());
        mac.update(issuer.as_bytes());
        mac.update(subject.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    pub fn hash(&self, secret: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Constant-time comparison of a presented secret with a stored hash.
    pub fn verify(&self, secret: &str, stored: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(secret.as_bytes());
        mac.verify_slice(stored).is_ok()
    }

    /// A new key: its id, the full token to hand out once, and the hash to store.
    pub fn issue(&self) -> (ApiKeyId, String, Vec<u8>) {
        let id = ApiKeyId::new();
        let (token, hash) = self.secret_for(id);
        (id, token, hash)
    }

    /// A new key for operator `id`: the full token (`tnt_op_<id>_<secret>`) and the hash.
    pub fn operator_secret(&self, id: tenantry_domain::OperatorId) -> (String, Vec<u8>) {
        let secret = hex::encode(rand::random::<[u8; 32]>());
        (format!("tnt_op_{}_{secret}", id.as_uuid().simple()), self.hash(&secret))
    }

    /// A new secret for key `id` (issued or rotated): the full token and the hash to store.
    pub fn secret_for(&self, id: ApiKeyId) -> (String, Vec<u8>) {
        let secret = hex::encode(rand::random::<[u8; 32]>());
        (format!("tnt_{}_{secret}", id.as_uuid().simple()), self.hash(&secret))
    }
}
