//! Bearer tokens from the customers' identity providers (OIDC access or ID tokens, as JWTs).
//!
//! `--oidc-config FILE` lists the trusted issuers. A token is checked with `jsonwebtoken`:
//! its `iss` picks the issuer entry, its header's `kid` the key of that issuer's JWKS, and
//! the signature (RS256, ES256, EdDSA; HS256 only for an entry with a shared secret), `iss`,
//! `aud`, `exp` and `nbf` (60 s leeway) must all hold. The JWKS comes from a file or from
//! a URL (HTTPS, or plain HTTP from a loopback address), is kept in memory, and is read
//! again when a token names a key it does not hold, at most once a minute per issuer.
//!
//! What the token says is handed on as [`Verified`]; which tenant and user it opens is
//! decided by authentication ([`super::auth`]).

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tenantry_domain::Role;

/// Leeway on `exp` and `nbf`, for clocks that drift.
const LEEWAY_SECONDS: u64 = 60;
/// The shortest time between two reads of an issuer's JWKS for an unknown `kid`.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest token accepted: larger ones are not parsed at all.
const MAX_TOKEN: usize = 16 * 1024;
/// Tokens whose signature was checked, kept before the memo starts afresh (a bound on
/// memory, not an LRU).
const REMEMBERED_TOKENS: usize = 50_000;

/// The file `--oidc-config` names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub issuers: Vec<IssuerConfig>,
}

/// One trusted issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` its tokens carry, exactly.
    pub issuer: String,
    /// The `aud` its tokens must carry.
    pub audience: String,
    /// A JWKS file (relative paths are read from the config file's folder).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL: HTTPS, or plain HTTP from a loopback address.
    pub jwks_url: Option<String>,
    /// A file holding a shared secret: only then are HS256 tokens taken from this issuer.
    pub hs256_secret_file: Option<PathBuf>,
    /// The claim naming the tenant, by id or slug.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// The claim naming the user at the issuer.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim holding the user's roles (a list or one string): `admin` or `user`.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
}

fn default_tenant_claim() -> String {
    "tenant_id".into()
}
fn default_user_claim() -> String {
    "sub".into()
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_email_claim() -> String {
    "email".into()
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub issuer: String,
    pub subject: String,
    /// The tenant claim as given: a tenant id or a slug.
    pub tenant: String,
    /// `admin` when the roles claim holds `admin`, else `user`.
    pub role: Role,
    pub email: Option<String>,
    /// `exp`, in Unix seconds.
    pub expires_at: i64,
}

/// Why a token was refused. Every one is a 401 to the caller; the reason goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("no trusted issuer `{0}`")]
    UnknownIssuer(String),
    #[error("algorithm {0:?} is not accepted from this issuer")]
    Algorithm(Algorithm),
    #[error("no key `{0}` in the issuer's key set")]
    UnknownKey(String),
    #[error("token rejected: {0}")]
    Rejected(String),
    #[error("claim `{0}` is missing or not a string")]
    Claim(String),
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Url(reqwest::Url),
    /// HS256 only.
    None,
}

/// A key of an issuer's set.
struct Key {
    kid: Option<String>,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Issuer {
    config: IssuerConfig,
    source: Source,
    hs256: Option<Key>,
    keys: RwLock<Vec<Key>>,
    /// When the set was last read; a read is awaited by one request at a time.
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

/// The trusted issuers and their keys.
#[derive(Debug)]
pub struct Oidc {
    issuers: Vec<Issuer>,
    client: reqwest::Client,
    /// Tokens already checked, by a SHA-256 of their bytes: the same token again is not
    /// checked again until its `exp` (with the leeway) has passed. Whether its user may
    /// still act is decided on every request all the same.
    // Guards only the map; never held across an await.
    checked: std::sync::Mutex<std::collections::HashMap<[u8; 32], Verified>>,
}

/// Whether a JWKS URL may be used: HTTPS, or HTTP to a loopback address.
fn allowed_url(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        },
        _ => false,
    }
}

fn parse_jwks(bytes: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        // Keys this build cannot use (another algorithm, encryption keys) are skipped.
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.push(Key { kid: jwk.common.key_id.clone(), key });
        }
    }
    Ok(keys)
}

impl Oidc {
    /// Read the config file and every issuer's keys. A JWKS URL that cannot be fetched now
    /// is tried again on the first token that needs it.
    pub async fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let config: OidcConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid OIDC configuration", path.display()))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let client = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build()?;
        let mut issuers = Vec::new();
        for entry in config.issuers {
            let at = |file: &Path| folder.join(file);
            let source = match (&entry.jwks_file, &entry.jwks_url) {
                (Some(file), None) => Source::File(at(file)),
                (None, Some(url)) => {
                    let url = reqwest::Url::parse(url).with_context(|| format!("jwks_url `{url}`"))?;
                    anyhow::ensure!(
                        allowed_url(&url),
                        "jwks_url `{url}` must be https (plain http only from a loopback address)"
                    );
                    Source::Url(url)
                }
                (None, None) if entry.hs256_secret_file.is_some() => Source::None,
                _ => anyhow::bail!(
                    "issuer `{}`: give exactly one of jwks_file and jwks_url (or only hs256_secret_file)",
                    entry.issuer
                ),
            };
            let hs256 = match &entry.hs256_secret_file {
                Some(file) => {
                    let secret = std::fs::read(at(file))
                        .with_context(|| format!("cannot read {}", at(file).display()))?;
                    let secret = secret.trim_ascii();
                    anyhow::ensure!(
                        secret.len() >= 32,
                        "issuer `{}`: an HS256 secret needs 32 bytes or more",
                        entry.issuer
                    );
                    Some(Key { kid: None, key: DecodingKey::from_secret(secret) })
                }
                None => None,
            };
            let issuer = Issuer {
                config: entry,
                source,
                hs256,
                keys: RwLock::new(Vec::new()),
                fetched: tokio::sync::Mutex::new(None),
            };
            // The read at start does not count toward the once-a-minute refresh: a key the
            // provider adds right after is still fetched on its first token.
            match issuer.read_keys(&client).await {
                Ok(keys) => issuer.keep(keys, &mut None),
                Err(e) if matches!(issuer.source, Source::Url(_)) => {
                    tracing::warn!(issuer = %issuer.config.issuer, error = %e, "JWKS not fetched; trying again on the first token")
                }
                Err(e) => anyhow::bail!("issuer `{}`: {e}", issuer.config.issuer),
            }
            issuers.push(issuer);
        }
        Ok(Self { issuers, client, checked: Default::default() })
    }

    /// Whether `token` has the form of a JWT (three dot-separated parts).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// Check a token and read what it says.
    pub async fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        if token.len() > MAX_TOKEN {
            return Err(TokenError::Malformed("too long".into()));
        }
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        let live = |v: &Verified| now < v.expires_at.saturating_add(LEEWAY_SECONDS as i64);
        if let Some(known) =
            self.checked.lock().ok().and_then(|m| m.get(&digest).filter(|v| live(v)).cloned())
        {
            return Ok(known);
        }
        let verified = self.check(token).await?;
        if let Ok(mut checked) = self.checked.lock() {
            if checked.len() >= REMEMBERED_TOKENS {
                checked.retain(|_, v| live(v));
                if checked.len() >= REMEMBERED_TOKENS {
                    checked.clear();
                }
            }
            checked.insert(digest, verified.clone());
        }
        Ok(verified)
    }

    /// Check a token's signature and claims.
    async fn check(&self, token: &str) -> Result<Verified, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        // The issuer is read before the signature is checked only to pick whose keys check it.
        let peek = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        let iss = peek.claims.get("iss").and_then(Value::as_str).ok_or(TokenError::Claim("iss".into()))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or_else(|| TokenError::UnknownIssuer(iss.chars().take(200).collect()))?;
        let alg = header.alg;
        let accepted = match alg {
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA => !matches!(issuer.source, Source::None),
            Algorithm::HS256 => issuer.hs256.is_some(),
            _ => false,
        };
        if !accepted {
            return Err(TokenError::Algorithm(alg));
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&issuer.config.issuer]);
        validation.set_audience(&[&issuer.config.audience]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let decoded = match alg {
            Algorithm::HS256 => issuer.hs256.as_ref().map(|k| decode(token, &k.key, &validation)),
            _ => {
                issuer
                    .with_key(&self.client, header.kid.as_deref(), |key| decode(token, key, &validation))
                    .await?
            }
        };
        let claims = decoded.ok_or_else(|| TokenError::UnknownKey(header.kid.unwrap_or_default()))??;
        issuer.read(claims)
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Map<String, Value>, TokenError> {
    jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| TokenError::Rejected(e.to_string()))
}

impl Issuer {
    async fn read_keys(&self, client: &reqwest::Client) -> Result<Vec<Key>, String> {
        let bytes = match &self.source {
            Source::None => return Ok(Vec::new()),
            Source::File(path) => {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
            }
            Source::Url(url) => {
                let response =
                    client.get(url.clone()).send().await.map_err(|e| format!("fetching {url}: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("fetching {url}: {}", response.status()));
                }
                response.bytes().await.map_err(|e| format!("fetching {url}: {e}"))?.to_vec()
            }
        };
        parse_jwks(&bytes)
    }

    fn keep(&self, keys: Vec<Key>, fetched: &mut Option<Instant>) {
        if let Ok(mut held) = self.keys.write() {
            *held = keys;
        }
        *fetched = Some(Instant::now());
    }

    /// Run `check` with the key `kid` names (or the only key, for a token without `kid`),
    /// reading the key set again first when it lacks that key and was not read in the last
    /// minute. `None` when there is no such key.
    async fn with_key<T>(
        &self,
        client: &reqwest::Client,
        kid: Option<&str>,
        check: impl Fn(&DecodingKey) -> T,
    ) -> Result<Option<T>, TokenError> {
        let find = |keys: &[Key]| -> Option<T> {
            match kid {
                Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)).map(|k| check(&k.key)),
                None if keys.len() == 1 => Some(check(&keys[0].key)),
                None => None,
            }
        };
        let held = |this: &Self| this.keys.read().ok().and_then(|keys| find(&keys));
        if let Some(found) = held(self) {
            return Ok(Some(found));
        }
        let mut fetched = self.fetched.lock().await;
        // Another request may have read the set while this one waited.
        if let Some(found) = held(self) {
            return Ok(Some(found));
        }
        if fetched.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
            return Ok(None);
        }
        match self.read_keys(client).await {
            Ok(keys) => self.keep(keys, &mut fetched),
            Err(e) => {
                // Not again for a minute either: a provider that is down is not hammered.
                *fetched = Some(Instant::now());
                tracing::warn!(issuer = %self.config.issuer, error = %e, "JWKS could not be read");
            }
        }
        drop(fetched);
        Ok(held(self))
    }

    /// The claims tenantry uses, from a verified token.
    fn read(&self, claims: Map<String, Value>) -> Result<Verified, TokenError> {
        let c = &self.config;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| TokenError::Claim(name.to_owned()))
        };
        let roles: Vec<&str> = match claims.get(&c.roles_claim) {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(one)) => one.split(' ').collect(),
            _ => Vec::new(),
        };
        Ok(Verified {
            issuer: c.issuer.clone(),
            subject: text(&c.user_claim)?,
            tenant: text(&c.tenant_claim)?,
            role: if roles.contains(&"admin") { Role::Admin } else { Role::User },
            email: text(&c.email_claim).ok(),
            expires_at: claims.get("exp").and_then(Value::as_i64).ok_or(TokenError::Claim("exp".into()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls_are_https_or_loopback_http() {
        let ok = |u: &str| allowed_url(&reqwest::Url::parse(u).unwrap_or_else(|_| panic!("{u}")));
        assert!(ok("https://id.example/jwks"));
        assert!(ok("http://127.0.0.1:9000/jwks"));
        assert!(ok("http://[::1]:9000/jwks"));
        assert!(ok("http://localhost/jwks"));
        assert!(!ok("http://id.example/jwks"));
        assert!(!ok("http://10.0.0.1/jwks"));
        assert!(!ok("ftp://127.0.0.1/jwks"));
    }
}
