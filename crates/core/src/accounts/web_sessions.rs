//! Dashboard sessions: signing in with email and password opens a server-side session that a browser
//! holds as a cookie token; every form of the session carries its CSRF token; signing out deletes the row.

use std::net::IpAddr;
use std::sync::Arc;

use barrack_api::Tier;
use barrack_store::web_sessions::WebSessionRow;
use sha2::{Digest, Sha256};

use crate::accounts::auth::constant_time_eq;
use crate::accounts::{AccountService, Caller, Credential};
use crate::platform::clock::system_now_ms;
use crate::platform::ids::random_alphanumeric;
use crate::{Context, Error, Result};

/// A signed-in browser, as the dashboard sees it on each request.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub caller: Caller,
    /// The token every form of this session must send back.
    pub csrf_token: String,
}

/// A session just opened: the cookie's token is only ever known to the browser and this value.
pub struct OpenedSession {
    pub token: String,
    pub session: WebSession,
}

#[derive(Clone)]
pub struct WebSessionService {
    context: Arc<Context>,
    accounts: AccountService,
}

impl WebSessionService {
    pub fn new(context: Arc<Context>, accounts: AccountService) -> WebSessionService {
        WebSessionService { context, accounts }
    }

    /// A token for the sign-in and sign-up forms, shown before there is a session (double submit: the
    /// browser's cookie and the form's hidden field hold it). It is signed, so a value a client chose
    /// is never one.
    pub fn new_form_token(&self) -> String {
        self.context.secrets.new_form_token()
    }

    /// Whether a form shown before there is a session sent back the token of the browser's cookie, and
    /// that token is one this installation minted.
    pub fn form_token_matches(&self, cookie: &str, submitted: &str) -> bool {
        self.context.secrets.form_token_is_ours(cookie)
            && constant_time_eq(cookie.as_bytes(), submitted.as_bytes())
    }

    /// Whether a browser's form cookie holds a token this installation minted.
    pub fn form_token_is_ours(&self, token: &str) -> bool {
        self.context.secrets.form_token_is_ours(token)
    }

    /// Checks email and password and opens a session in `tier`. It lasts as long as a refresh token
    /// (`tokens.refresh_ttl_seconds`) and, like tokens, follows real time rather than the simulated clock.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        tier: Tier,
        address: IpAddr,
    ) -> Result<OpenedSession> {
        let account = self
            .accounts
            .verify_credentials(email, password, address)
            .await?;
        let now = system_now_ms();
        let token = random_alphanumeric(43);
        let ttl_ms = self.context.config.tokens.refresh_ttl_seconds as i64 * 1000;
        let row = WebSessionRow {
            id: session_id(&token),
            account_id: account.id.clone(),
            tier: tier.as_str().to_string(),
            csrf_token: random_alphanumeric(32),
            created_at: now,
            expires_at: now + ttl_ms,
        };
        self.context.store.insert_web_session(&row).await?;
        // Now and then, not on every request: expired rows are harmless until then.
        if let Err(e) = self.context.store.delete_expired_web_sessions(now).await {
            tracing::warn!(error = %e, "could not remove expired dashboard sessions");
        }
        Ok(OpenedSession {
            token,
            session: WebSession {
                caller: Caller {
                    account,
                    tier,
                    credential: Credential::WebSession { id: row.id },
                },
                csrf_token: row.csrf_token,
            },
        })
    }

    /// The live session a cookie's token names.
    pub async fn authenticate(&self, token: &str) -> Result<WebSession> {
        let expired = || Error::Unauthenticated("Your session has ended; sign in again".into());
        if token.is_empty() || token.len() > 128 {
            return Err(expired());
        }
        let (row, account) = self
            .context
            .store
            .live_web_session(&session_id(token), system_now_ms())
            .await?
            .ok_or_else(expired)?;
        let tier = Tier::parse(&row.tier)
            .ok_or_else(|| Error::internal(format!("web session has tier {}", row.tier)))?;
        Ok(WebSession {
            caller: Caller {
                account,
                tier,
                credential: Credential::WebSession { id: row.id },
            },
            csrf_token: row.csrf_token,
        })
    }

    /// Ends the session the token names (nothing when it already ended).
    pub async fn sign_out(&self, token: &str) -> Result<()> {
        self.context
            .store
            .delete_web_session(&session_id(token))
            .await?;
        Ok(())
    }
}

/// The stored form of a session token. The token is 43 random alphanumerics (about 256 bits), so a plain
/// hash is enough: nothing can be guessed from a leaked table.
fn session_id(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a submitted form token is the session's, compared in constant time.
pub fn csrf_matches(session: &WebSession, submitted: &str) -> bool {
    constant_time_eq(session.csrf_token.as_bytes(), submitted.as_bytes())
}
