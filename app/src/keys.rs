//! API key secrets: only a keyed hash of a secret is stored, and a presented secret is
//! compared with it in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tenantry_domain::ApiKeyId;

/// Hashes secrets with a key derived from the master key.
#[derive(Clone)]
pub struct KeyHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

impl KeyHasher {
    pub fn new(master: &tenantry_store::MasterKey) -> Self {
        Self { key: *master.derive("api-keys") }
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
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
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let token = format!("tnt_{}_{secret}", id.as_uuid().simple());
        (id, token, self.hash(&secret))
    }
}
