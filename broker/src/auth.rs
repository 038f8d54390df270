//! Credentials: host, observer and Home Assistant tokens.
//!
//! A token is 256 random bits, shown once and stored only as its SHA-256. A slow password
//! hash (argon2) would add nothing for a random 256-bit secret, and a reconnect storm of
//! 10,000 agents would cost minutes of CPU; SHA-256 costs microseconds.

use std::collections::HashMap;
use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wire::{DiscoveryPrefix, HostId};

/// A fresh token: 32 random bytes from the OS generator, as 64 hex characters.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the database stores instead of the token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What a credential may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// An agent: publishes its own topics only.
    Host,
    /// A read-only client (`mosquitto_sub`, debugging): subscribes under `pmon/v1/`.
    Observer,
    /// Home Assistant: reads `pmon/v1/` and the discovery prefix, publishes only its own
    /// birth and will on `<prefix>/status`.
    HomeAssistant(Arc<DiscoveryPrefix>),
}

/// One stored credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub role: Role,
    pub token_hash: [u8; 32],
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("role", &self.role).finish_non_exhaustive()
    }
}

/// Who a connection is, once its CONNECT was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Host(HostId),
    Observer(String),
    /// A Home Assistant instance, with the discovery prefix the server serves.
    HomeAssistant(String, Arc<DiscoveryPrefix>),
}

impl Identity {
    pub fn name(&self) -> &str {
        match self {
            Identity::Host(h) => h.as_str(),
            Identity::Observer(n) | Identity::HomeAssistant(n, _) => n,
        }
    }
}

/// Every credential, by username (host id, observer or Home Assistant name). They share
/// one namespace, so a name is never two of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialTable(pub HashMap<String, Credential>);

impl CredentialTable {
    /// Checks a username and token. Unknown users cost the same hash as known ones.
    pub fn verify(&self, username: &str, token: &str) -> Option<(Identity, [u8; 32])> {
        let presented = hash_token(token);
        let credential = self.0.get(username)?;
        if !bool::from(credential.token_hash.ct_eq(&presented)) {
            return None;
        }
        let identity = match &credential.role {
            Role::Host => Identity::Host(HostId::parse(username).ok()?),
            Role::Observer => Identity::Observer(username.to_owned()),
            Role::HomeAssistant(prefix) => Identity::HomeAssistant(username.to_owned(), prefix.clone()),
        };
        Some((identity, presented))
    }

    /// Whether a session authenticated with `token_hash` is still allowed.
    pub fn still_valid(&self, username: &str, token_hash: &[u8; 32]) -> bool {
        self.0.get(username).is_some_and(|c| bool::from(c.token_hash.ct_eq(token_hash)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_unique() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn verify_accepts_only_the_right_token() {
        let token = new_token();
        let table = CredentialTable(HashMap::from([
            ("pve1".to_string(), Credential { role: Role::Host, token_hash: hash_token(&token) }),
            ("ops".to_string(), Credential { role: Role::Observer, token_hash: hash_token("o") }),
        ]));
        let (id, hash) = table.verify("pve1", &token).unwrap();
        assert_eq!(id, Identity::Host(HostId::parse("pve1").unwrap()));
        assert!(table.still_valid("pve1", &hash));
        assert!(table.verify("pve1", "wrong").is_none());
        assert!(table.verify("pve2", &token).is_none());
        assert_eq!(table.verify("ops", "o").unwrap().0, Identity::Observer("ops".into()));
        assert!(!table.still_valid("gone", &hash));
    }
}
