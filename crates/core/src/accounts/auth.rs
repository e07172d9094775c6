//! Secrets: password hashes, keyed hashes of API keys, and signed session tokens (JWT, HS256).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use barrack_api::Tier;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::platform::ids::random_alphanumeric;

type HmacSha256 = Hmac<Sha256>;

/// Keys derived from the server secret, one per purpose.
pub struct Secrets {
    api_key_hash_key: [u8; 32],
    token_signing_key: [u8; 32],
}

impl Secrets {
    pub fn from_server_secret(secret: &str) -> Secrets {
        Secrets::new(secret, None)
    }

    /// Tokens are signed under `token_secret` when one is configured, so rotating it logs everyone out
    /// without revoking API keys, and rotating the server secret revokes keys without ending sessions.
    pub fn new(secret: &str, token_secret: Option<&str>) -> Secrets {
        Secrets {
            api_key_hash_key: derive(secret, b"barrack/api-key-hash/v1"),
            token_signing_key: derive(token_secret.unwrap_or(secret), b"barrack/session-token/v1"),
        }
    }

    /// The stored form of an API key secret: HMAC-SHA256 under a key derived from the server secret, so a
    /// leaked database alone does not allow guessing keys offline.
    pub fn hash_api_key(&self, key: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.api_key_hash_key).expect("any key length");
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn sign_token(&self, claims: &TokenClaims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = HmacSha256::new_from_slice(&self.token_signing_key).expect("any key length");
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// Checks the signature and expiry of a token; `None` for anything not valid now.
    pub fn verify_token(&self, token: &str, now_seconds: i64) -> Option<TokenClaims> {
        let mut parts = token.split('.');
        let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "HS256" {
            return None;
        }
        let mut mac = HmacSha256::new_from_slice(&self.token_signing_key).expect("any key length");
        mac.update(format!("{}.{payload}", token.split('.').next()?).as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?)
            .ok()?;
        let claims: TokenClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.exp > now_seconds).then_some(claims)
    }
}

fn derive(secret: &str, purpose: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Account id.
    pub sub: String,
    pub typ: TokenKind,
    pub tier: Tier,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// A new API key secret: `sk_` and 40 random alphanumerics (about 238 bits).
pub fn generate_api_key() -> String {
    format!("sk_{}", random_alphanumeric(40))
}

/// The visible start of a key, to recognise it in lists.
pub fn api_key_prefix(key: &str) -> String {
    key.chars().take(10).collect()
}

/// A server secret for a new installation.
pub fn generate_server_secret() -> String {
    random_alphanumeric(64)
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_untampered_and_unexpired() {
        let secrets = Secrets::from_server_secret("s3cret");
        let claims = TokenClaims {
            sub: "BRK-AAAAAAU".into(),
            typ: TokenKind::Access,
            tier: Tier::Legacy,
            iat: 100,
            exp: 200,
            jti: "x".into(),
        };
        let token = secrets.sign_token(&claims);
        assert_eq!(secrets.verify_token(&token, 150), Some(claims.clone()));
        assert_eq!(secrets.verify_token(&token, 200), None, "expired");
        assert_eq!(
            Secrets::from_server_secret("other").verify_token(&token, 150),
            None
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            br#"{"sub":"BRK-ADMINXU","typ":"access","tier":"legacy","iat":1,"exp":999,"jti":"x"}"#,
        );
        parts[1] = &forged;
        assert_eq!(secrets.verify_token(&parts.join("."), 150), None);
    }

    #[test]
    fn api_key_hashes_are_keyed() {
        let a = Secrets::from_server_secret("one");
        let b = Secrets::from_server_secret("two");
        let key = generate_api_key();
        assert!(key.starts_with("sk_") && key.len() == 43);
        assert_eq!(a.hash_api_key(&key), a.hash_api_key(&key));
        assert_ne!(a.hash_api_key(&key), b.hash_api_key(&key));
        assert!(!a.hash_api_key(&key).contains(&key[3..]));
    }

    #[test]
    fn passwords_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("x", "not a hash"));
    }
}
