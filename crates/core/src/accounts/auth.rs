//! Secrets: password hashes, keyed hashes of API keys, and signed session tokens (JWT, HS256).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use barrack_api::Tier;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::platform::ids::random_alphanumeric;

type HmacSha256 = Hmac<Sha256>;

/// How many random characters start a form token (about 131 bits); its MAC's 32 hex digits follow.
const FORM_NONCE_LEN: usize = 22;

/// Whether `a` and `b` are equal, in time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Keys derived from the server secret, one per purpose.
pub struct Secrets {
    /// The HMAC keyed for API key hashes, built once: each hash clones it rather than hashing the key
    /// into its inner and outer pads again.
    api_key_mac: HmacSha256,
    token_signing_key: [u8; 32],
    /// The HMAC keyed for the dashboard's sign-in and sign-up form tokens.
    form_token_mac: HmacSha256,
}

impl Secrets {
    pub fn from_server_secret(secret: &str) -> Secrets {
        Secrets::new(secret, None)
    }

    /// Tokens are signed under `token_secret` when one is configured, so rotating it logs everyone out
    /// without revoking API keys, and rotating the server secret revokes keys without ending sessions.
    pub fn new(secret: &str, token_secret: Option<&str>) -> Secrets {
        Secrets {
            api_key_mac: HmacSha256::new_from_slice(&derive(secret, b"barrack/api-key-hash/v1"))
                .expect("any key length"),
            token_signing_key: derive(token_secret.unwrap_or(secret), b"barrack/session-token/v1"),
            form_token_mac: HmacSha256::new_from_slice(&derive(secret, b"barrack/form-token/v1"))
                .expect("any key length"),
        }
    }

    /// A new form token for forms shown before there is a session: a random part and its MAC, so that
    /// only tokens this installation minted are taken, whatever a client sets its cookie to.
    pub fn new_form_token(&self) -> String {
        let nonce = random_alphanumeric(FORM_NONCE_LEN);
        let signature = self.form_token_signature(&nonce);
        format!("{nonce}{signature}")
    }

    /// Whether `token` is one [`Self::new_form_token`] minted (its MAC compared in constant time).
    pub fn form_token_is_ours(&self, token: &str) -> bool {
        if token.len() != FORM_NONCE_LEN + 32 || !token.is_ascii() {
            return false;
        }
        let (nonce, signature) = token.split_at(FORM_NONCE_LEN);
        constant_time_eq(
            self.form_token_signature(nonce).as_bytes(),
            signature.as_bytes(),
        )
    }

    /// The first 128 bits of the nonce's MAC, in hex.
    fn form_token_signature(&self, nonce: &str) -> String {
        let mut mac = self.form_token_mac.clone();
        mac.update(nonce.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// The stored form of an API key secret: HMAC-SHA256 under a key derived from the server secret, so a
    /// leaked database alone does not allow guessing keys offline.
    pub fn hash_api_key(&self, key: &str) -> String {
        let mut mac = self.api_key_mac.clone();
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn sign_token(&self, claims: &TokenClaims) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&self.token_signing_key),
        )
        .expect("HS256 signing of serializable claims cannot fail")
    }

    /// Checks the signature (HS256 only: the header cannot choose another algorithm) and the expiry, with no
    /// leeway; `None` for anything not valid at `now_seconds`.
    pub fn verify_token(&self, token: &str, now_seconds: i64) -> Option<TokenClaims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<TokenClaims>(
            token,
            &DecodingKey::from_secret(&self.token_signing_key),
            &validation,
        )
        .ok()?
        .claims;
        // The library accepts a token in its very last second; a token expiring now is expired.
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
    /// The token's own id (a refresh token's row).
    pub jti: String,
    /// The session (log-in) the token belongs to: revoking it ends every token of the family.
    pub sid: String,
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
    use crate::platform::clock::system_now_ms;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn now() -> i64 {
        system_now_ms() / 1000
    }

    fn claims(exp: i64) -> TokenClaims {
        TokenClaims {
            sub: "BRK-AAAAAAU".into(),
            typ: TokenKind::Access,
            tier: Tier::Legacy,
            iat: now() - 10,
            exp,
            jti: "x".into(),
            sid: "s".into(),
        }
    }

    #[test]
    fn form_tokens_are_ours_only_when_this_secret_minted_them_untouched() {
        let secrets = Secrets::from_server_secret("s3cret");
        let token = secrets.new_form_token();
        assert_eq!(token.len(), 54);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()), "{token}");
        assert!(secrets.form_token_is_ours(&token));
        assert_ne!(secrets.new_form_token(), token);
        // Each character matters, in the random part and in the MAC.
        for at in [0, 21, 22, 53] {
            let mut altered = token.clone().into_bytes();
            altered[at] = if altered[at] == b'0' { b'1' } else { b'0' };
            let altered = String::from_utf8(altered).unwrap();
            assert!(!secrets.form_token_is_ours(&altered), "{altered}");
        }
        assert!(!Secrets::from_server_secret("other").form_token_is_ours(&token));
        for wrong in [
            "",
            &token[..53],
            &format!("{token}0"),
            &"A".repeat(54),
            &"é".repeat(27),
        ] {
            assert!(!secrets.form_token_is_ours(wrong), "{wrong}");
        }
    }

    #[test]
    fn tokens_verify_only_untampered_and_unexpired() {
        let secrets = Secrets::from_server_secret("s3cret");
        let now = now();
        let valid = claims(now + 100);
        let token = secrets.sign_token(&valid);
        assert_eq!(secrets.verify_token(&token, now), Some(valid.clone()));
        assert_eq!(secrets.verify_token(&token, now + 100), None, "expired");
        let expired = secrets.sign_token(&claims(now - 1));
        assert_eq!(secrets.verify_token(&expired, now - 5), None, "no leeway");
        let ending = secrets.sign_token(&claims(now));
        assert_eq!(secrets.verify_token(&ending, now), None, "expires at exp");
        assert_eq!(
            Secrets::from_server_secret("other").verify_token(&token, now),
            None
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"BRK-ADMINXU","typ":"access","tier":"legacy","iat":1,"exp":{},"jti":"x","sid":"s"}}"#,
            now + 100
        ));
        parts[1] = &forged;
        assert_eq!(secrets.verify_token(&parts.join("."), now), None);
    }

    #[test]
    fn only_hs256_is_accepted() {
        let secrets = Secrets::from_server_secret("s3cret");
        let now = now();
        let token = secrets.sign_token(&claims(now + 100));
        let payload = token.split('.').nth(1).unwrap();
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"HS512","typ":"JWT"}"#,
        ] {
            let unsigned = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header));
            assert_eq!(secrets.verify_token(&unsigned, now), None, "{header}");
        }
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
