//! Accounts: sign-up, sessions, billing profiles, API keys, and who is calling.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use barrack_api::account::{
    AccessToken, AccountAccess, AdminUser, CreatedApiKey, PasswordChange, ProfileUpdate,
    RegisterRequest, SessionsEnded, TokenObtainPair, TokenPair, UserProfile,
};
use barrack_api::{PageRequest, Pagination, Tier};
use barrack_store::accounts::{AccountRow, ProfileFields};
use barrack_store::token_sessions::{self, Rotation, TokenSessionRow};
use barrack_store::{StoreError, Tx, accounts, api_keys};

use crate::accounts::auth::{TokenClaims, TokenKind};
use crate::accounts::heavy;
use crate::accounts::login_throttle::LoginThrottle;
use crate::platform::clock::{format_ms, system_now_ms};
use crate::platform::countries;
use crate::platform::ids::{IdDraws, IdKind, new_id, random_alphanumeric};
use crate::platform::validate::{Validator, check_plain_text, is_format_char, length_between};
use crate::{Context, Error, Result};

/// Passwords of new accounts, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey {
        id: String,
        name: String,
    },
    /// An access token of a log-in: the session it names, and when it expires (seconds since the epoch,
    /// real time).
    Token {
        session_id: String,
        expires_at: i64,
    },
    /// A dashboard sign-in: its stored session id.
    WebSession {
        id: String,
    },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: AccountRow,
    /// The tier the request acts in: the key's, or the session's.
    pub tier: Tier,
    pub credential: Credential,
}

impl Caller {
    pub fn account_id(&self) -> &str {
        &self.account.id
    }

    pub fn is_admin(&self) -> bool {
        self.account.is_admin
    }

    pub fn require_admin(&self) -> Result<()> {
        if self.account.is_admin {
            Ok(())
        } else {
            Err(Error::Forbidden("Operator access required".into()))
        }
    }

    /// The name of the calling API key, if it was one.
    pub fn key_name(&self) -> Option<&str> {
        match &self.credential {
            Credential::ApiKey { name, .. } => Some(name),
            Credential::Token { .. } | Credential::WebSession { .. } => None,
        }
    }
}

/// Most live API keys one account may hold.
pub const MAX_API_KEYS: usize = 50;
/// Last-used times are written at most this often per key, to keep reads free of writes.
const TOUCH_INTERVAL_MS: i64 = 60_000;

#[derive(Clone)]
pub struct AccountService {
    pub(super) context: Arc<Context>,
    touched: Arc<Mutex<HashMap<String, i64>>>,
    /// Failed passwords, by email and by address, for every way of giving one (API tokens, the
    /// dashboard's sign-in, a password change).
    throttle: LoginThrottle,
}

/// The operator's password of a first start, and its hash: slow on purpose, so a server starting on an
/// empty database makes it beside the migrations ([`AdminPassword::generate`]), not after them.
pub struct AdminPassword {
    password: String,
    hash: String,
}

impl AdminPassword {
    pub async fn generate() -> Result<AdminPassword> {
        let password = random_alphanumeric(24);
        let hash = heavy::hash_password(&password).await?;
        Ok(AdminPassword { password, hash })
    }
}

/// What the first start of a new installation created.
pub struct Bootstrap {
    pub email: String,
    pub password: String,
    pub key: CreatedApiKey,
}

impl AccountService {
    pub fn new(context: Arc<Context>) -> AccountService {
        AccountService {
            throttle: LoginThrottle::new(context.store.clone()),
            context,
            touched: Arc::default(),
        }
    }

    pub(super) fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    /// 403 unless anyone may create an account here (`open_signup`).
    pub fn require_open_signup(&self) -> Result<()> {
        if self.context.config.open_signup {
            return Ok(());
        }
        Err(Error::Forbidden(
            "Sign-up is closed on this installation; ask an operator for an account".into(),
        ))
    }

    /// `POST /api/auth/register/`.
    pub async fn register(&self, request: RegisterRequest) -> Result<UserProfile> {
        self.require_open_signup()?;
        self.create_account(&request.email, &request.password, &request.name, false)
            .await
    }

    /// Creates an account (sign-up and operators share this path).
    pub async fn create_account(
        &self,
        email: &str,
        password: &str,
        name: &str,
        admin: bool,
    ) -> Result<UserProfile> {
        self.create_account_hashed(email, password, None, name, admin)
            .await
    }

    /// [`AccountService::create_account`] with the password's hash made already, when it is given.
    async fn create_account_hashed(
        &self,
        email: &str,
        password: &str,
        hash: Option<String>,
        name: &str,
        admin: bool,
    ) -> Result<UserProfile> {
        let mut v = Validator::new();
        let email = email.trim().to_lowercase();
        match email
            .chars()
            .find(|&c| c.is_control() || is_format_char(c))
        {
            Some(c) => v.add(
                "email",
                format!(
                    "Email must not contain control or invisible formatting characters such as U+{:04X}",
                    u32::from(c)
                ),
            ),
            None => v.check(valid_email(&email), "email", "Enter a valid email address"),
        }
        v.check(
            length_between(password, PASSWORD_MIN_CHARS, PASSWORD_MAX_CHARS),
            "password",
            format!(
                "Password must be between {PASSWORD_MIN_CHARS} and {PASSWORD_MAX_CHARS} characters"
            ),
        );
        check_person_name(&mut v, "name", name);
        v.finish()?;
        let now = self.now();
        let mut row = AccountRow {
            id: new_id(IdKind::User),
            email,
            password_hash: match hash {
                Some(hash) => hash,
                None => heavy::hash_password(password).await?,
            },
            name: name.trim().to_string(),
            phone: None,
            address_line: None,
            city: None,
            state: None,
            postal_code: None,
            country: None,
            is_admin: admin,
            created_at: now,
            updated_at: now,
            disabled_at: None,
        };
        let mut draws = IdDraws::of("account");
        loop {
            match accounts::insert(&mut &self.context.store, &row).await {
                Ok(true) => return Ok(profile_of(&row)),
                Ok(false) => {
                    draws.taken()?;
                    row.id = new_id(IdKind::User);
                }
                // An email taken is the only unique violation left; anything else is an error.
                Err(StoreError::Unique(_))
                    if self
                        .context
                        .store
                        .account_by_email(&row.email)
                        .await?
                        .is_some() =>
                {
                    return Err(Error::conflict(
                        "DUPLICATE_NAME",
                        "An account with this email already exists",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// On the very first start (no accounts at all), creates an operator account and an API key for it,
    /// with `password` when one was made ahead.
    pub async fn bootstrap_admin(
        &self,
        password: Option<AdminPassword>,
    ) -> Result<Option<Bootstrap>> {
        if self.context.store.count_accounts().await? > 0 {
            return Ok(None);
        }
        let email = "admin@barrack.local".to_string();
        let AdminPassword { password, hash } = match password {
            Some(password) => password,
            None => AdminPassword::generate().await?,
        };
        let profile = match self
            .create_account_hashed(&email, &password, Some(hash), "Administrator", true)
            .await
        {
            Ok(profile) => profile,
            // Another server starting on the same empty database made it first: it has the credentials.
            Err(Error::Conflict {
                code: "DUPLICATE_NAME",
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let key = self
            .create_api_key(&profile.id, "admin", Tier::Advanced)
            .await?;
        Ok(Some(Bootstrap {
            email,
            password,
            key,
        }))
    }

    /// `POST /api/auth/token/`: a new session (the family of every token this log-in leads to).
    pub async fn login(&self, request: TokenObtainPair, address: IpAddr) -> Result<TokenPair> {
        let account = self
            .verify_credentials(&request.email, &request.password, address)
            .await?;
        let tier = request.tier.unwrap_or(Tier::Legacy);
        let now = system_now_ms() / 1000;
        let session = TokenSessionRow {
            id: random_alphanumeric(24),
            account_id: account.id.clone(),
            tier: tier.as_str().to_string(),
            created_at: now * 1000,
            expires_at: now * 1000,
            revoked_at: None,
        };
        let mut tx = self.context.store.begin().await?;
        token_sessions::insert_session(&mut tx, &session).await?;
        let refresh = self
            .issue_refresh(&mut tx, &session.id, &account.id, tier, now)
            .await?;
        tx.commit().await?;
        // Now and then, not on every request: expired rows are harmless until then.
        if let Err(e) = token_sessions::delete_expired(&mut &self.context.store, now * 1000).await {
            tracing::warn!(error = %e, "could not remove expired sessions");
        }
        Ok(TokenPair {
            access: self.issue_access(&account.id, &session.id, tier, now),
            refresh,
        })
    }

    /// The account with this email and password, given from `address` (token sign-in and the dashboard's
    /// sign-in). A disabled account fails like a wrong password. After a few failures for the email or the
    /// address, attempts are held back (429) before the password is checked ([`LoginThrottle`]); each
    /// attempt counts as a failure from before its check until it ends, so attempts sent at once get no
    /// more checks than that. A success clears the email's failures.
    pub async fn verify_credentials(
        &self,
        email: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<AccountRow> {
        let attempt = self.throttle.begin(email, address).await?;
        let verified = self.check_credentials(email, password).await;
        match &verified {
            Ok(_) => attempt.succeeded().await,
            Err(Error::Unauthenticated(_)) => attempt.failed(),
            Err(_) => attempt.withdrawn().await,
        }
        verified
    }

    async fn check_credentials(&self, email: &str, password: &str) -> Result<AccountRow> {
        let email = email.trim().to_lowercase();
        let account = self.context.store.account_by_email(&email).await?;
        let valid = match &account {
            Some(a) => heavy::verify_password(password, &a.password_hash).await?,
            None => {
                // Same work either way, so timing does not reveal which emails exist.
                heavy::verify_password(password, DUMMY_HASH).await?;
                false
            }
        };
        account
            .filter(|a| valid && a.disabled_at.is_none())
            .ok_or_else(|| Error::Unauthenticated("Invalid email or password".into()))
    }

    /// `POST /api/auth/token/refresh/`: the refresh token is spent and replaced. Presenting a spent one again
    /// means two parties hold it, so the whole session is revoked and neither can go on.
    pub async fn refresh(&self, refresh: &str) -> Result<AccessToken> {
        let invalid = || Error::Unauthenticated("Refresh token is invalid or expired".into());
        let now = system_now_ms() / 1000;
        let claims = self
            .context
            .secrets
            .verify_token(refresh, now)
            .filter(|c| c.typ == TokenKind::Refresh)
            .ok_or_else(invalid)?;
        let mut tx = self.context.store.begin().await?;
        match token_sessions::use_refresh_token(&mut tx, &claims.jti, now * 1000).await? {
            Rotation::Used => {}
            Rotation::Reused => {
                token_sessions::revoke_session(&mut tx, &claims.sid, now * 1000).await?;
                tx.commit().await?;
                tracing::warn!(
                    account_id = claims.sub,
                    "a used refresh token was presented again; its session is revoked"
                );
                return Err(Error::Unauthenticated(
                    "Refresh token was already used; the session has been ended, log in again"
                        .into(),
                ));
            }
            Rotation::Unknown => return Err(invalid()),
        }
        let (session, account) = token_sessions::live_session(&mut tx, &claims.sid)
            .await?
            .filter(|(s, _)| s.account_id == claims.sub)
            .ok_or_else(invalid)?;
        let refresh = self
            .issue_refresh(&mut tx, &session.id, &account.id, claims.tier, now)
            .await?;
        tx.commit().await?;
        Ok(AccessToken {
            access: self.issue_access(&account.id, &session.id, claims.tier, now),
            refresh,
        })
    }

    /// `POST /api/auth/logout/`: revokes the session the refresh token belongs to, with every token of it.
    pub async fn logout(&self, refresh: &str) -> Result<SessionsEnded> {
        let now = system_now_ms() / 1000;
        let claims = self
            .context
            .secrets
            .verify_token(refresh, now)
            .filter(|c| c.typ == TokenKind::Refresh)
            .ok_or_else(|| Error::Unauthenticated("Refresh token is invalid or expired".into()))?;
        let revoked =
            token_sessions::revoke_session(&mut &self.context.store, &claims.sid, now * 1000)
                .await?;
        Ok(SessionsEnded {
            sessions_revoked: u64::from(revoked),
            api_keys_revoked: 0,
        })
    }

    /// `POST /api/account/password/`: needs the current password; ends every session of the account (token
    /// log-ins and dashboard sign-ins, the caller's included). API keys stay.
    pub async fn change_password(
        &self,
        caller: &Caller,
        request: PasswordChange,
        address: IpAddr,
    ) -> Result<SessionsEnded> {
        // Wrong current passwords count as failed log-ins: a stolen token or key cannot guess the password.
        let attempt = self.throttle.begin(&caller.account.email, address).await?;
        let mut v = Validator::new();
        v.check(
            length_between(
                &request.new_password,
                PASSWORD_MIN_CHARS,
                PASSWORD_MAX_CHARS,
            ),
            "new_password",
            format!(
                "Password must be between {PASSWORD_MIN_CHARS} and {PASSWORD_MAX_CHARS} characters"
            ),
        );
        if let Err(e) = v.finish() {
            attempt.withdrawn().await;
            return Err(e);
        }
        match heavy::verify_password(&request.current_password, &caller.account.password_hash).await
        {
            // The right password takes its attempt back; it is not a log-in, so earlier failures stay.
            Ok(true) => attempt.withdrawn().await,
            Ok(false) => {
                attempt.failed();
                return Err(Error::field(
                    "current_password",
                    "Current password is incorrect",
                ));
            }
            Err(e) => {
                attempt.withdrawn().await;
                return Err(e);
            }
        }
        let hash = heavy::hash_password(&request.new_password).await?;
        let now = system_now_ms();
        let mut tx = self.context.store.begin().await?;
        barrack_store::firewalls::lock_account(&mut tx, caller.account_id()).await?;
        accounts::set_password_hash(&mut tx, caller.account_id(), &hash, self.now()).await?;
        let sessions =
            token_sessions::revoke_account_sessions(&mut tx, caller.account_id(), now).await?;
        tx.commit().await?;
        // A cached key lookup holds the account's row, password hash included.
        self.context.store.auth_changed(caller.account_id()).await?;
        Ok(SessionsEnded {
            sessions_revoked: sessions,
            api_keys_revoked: 0,
        })
    }

    /// Operators: disables an account (`disabled`) and, in the same transaction, revokes its sessions and
    /// API keys, so nothing it holds authenticates afterwards; or enables it again (its revoked keys stay
    /// revoked: it signs in with its password and makes new ones).
    pub async fn set_disabled(
        &self,
        operator: &Caller,
        account: &str,
        disabled: bool,
    ) -> Result<AccountAccess> {
        let account = self.account_by_id_or_email(account).await?;
        let account_id = account.id.as_str();
        if disabled && operator.account_id() == account_id {
            return Err(Error::conflict(
                "CONFLICT",
                "Operators cannot disable their own account",
            ));
        }
        let mut tx = self.context.store.begin().await?;
        barrack_store::firewalls::lock_account(&mut tx, account_id).await?;
        let at = disabled.then(|| self.now());
        if !accounts::set_disabled(&mut tx, account_id, at).await? {
            return Err(Error::not_found("User", account_id));
        }
        let (sessions, keys) = if disabled {
            let now = system_now_ms();
            (
                token_sessions::revoke_account_sessions(&mut tx, account_id, now).await?,
                api_keys::revoke_all_for_account(&mut tx, account_id, self.now()).await?,
            )
        } else {
            (0, 0)
        };
        tx.commit().await?;
        // Replicas drop cached key lookups of the account now, not when their cache entry expires.
        self.context.store.auth_changed(account_id).await?;
        Ok(AccountAccess {
            user_id: account_id.to_string(),
            disabled,
            sessions_revoked: sessions,
            api_keys_revoked: keys,
        })
    }

    // Session tokens follow real time, not the simulated clock: moving the simulation a month ahead must
    // not log everyone out.
    fn issue_access(&self, account_id: &str, session_id: &str, tier: Tier, now: i64) -> String {
        let ttl = self.context.config.tokens.access_ttl_seconds as i64;
        self.context.secrets.sign_token(&TokenClaims {
            sub: account_id.to_string(),
            typ: TokenKind::Access,
            tier,
            iat: now,
            exp: now + ttl,
            jti: random_alphanumeric(12),
            sid: session_id.to_string(),
        })
    }

    /// A refresh token of the session, recorded by its id so that it can be spent once.
    async fn issue_refresh(
        &self,
        tx: &mut Tx,
        session_id: &str,
        account_id: &str,
        tier: Tier,
        now: i64,
    ) -> Result<String> {
        let ttl = self.context.config.tokens.refresh_ttl_seconds as i64;
        let id = random_alphanumeric(24);
        token_sessions::insert_refresh_token(tx, &id, session_id, now * 1000, (now + ttl) * 1000)
            .await?;
        Ok(self.context.secrets.sign_token(&TokenClaims {
            sub: account_id.to_string(),
            typ: TokenKind::Refresh,
            tier,
            iat: now,
            exp: now + ttl,
            jti: id,
            sid: session_id.to_string(),
        }))
    }

    /// Resolves an `X-API-Key` secret. Revoked keys fail at once: every request reads the key's row.
    pub async fn authenticate_key(&self, secret: &str) -> Result<Caller> {
        let unauthenticated = || Error::Unauthenticated("Invalid or revoked API key".into());
        if !secret.starts_with("sk_") || secret.len() > 128 {
            return Err(unauthenticated());
        }
        let hash = self.context.secrets.hash_api_key(secret);
        let (key, account) = self
            .context
            .store
            .live_api_key_by_hash(&hash)
            .await?
            .ok_or_else(unauthenticated)?;
        self.touch(&key.id).await;
        let tier = Tier::parse(&key.tier)
            .ok_or_else(|| Error::internal(format!("key {} has tier {}", key.id, key.tier)))?;
        Ok(Caller {
            account,
            tier,
            credential: Credential::ApiKey {
                id: key.id,
                name: key.name,
            },
        })
    }

    /// Resolves an `Authorization: Bearer` access token: valid, and its session neither revoked nor of a
    /// disabled account (one read, as for keys).
    pub async fn authenticate_token(&self, token: &str) -> Result<Caller> {
        let unauthenticated =
            || Error::Unauthenticated("Access token is invalid or expired".into());
        let claims = self
            .context
            .secrets
            .verify_token(token, system_now_ms() / 1000)
            .filter(|c| c.typ == TokenKind::Access)
            .ok_or_else(unauthenticated)?;
        let (_, account) = token_sessions::live_session(&mut &self.context.store, &claims.sid)
            .await?
            .filter(|(s, _)| s.account_id == claims.sub)
            .ok_or_else(unauthenticated)?;
        Ok(Caller {
            account,
            tier: claims.tier,
            credential: Credential::Token {
                session_id: claims.sid,
                expires_at: claims.exp,
            },
        })
    }

    async fn touch(&self, key_id: &str) {
        let now = self.now();
        {
            let mut touched = self.touched.lock().expect("touch map");
            match touched.get(key_id) {
                Some(&at) if now - at < TOUCH_INTERVAL_MS => return,
                _ => touched.insert(key_id.to_string(), now),
            };
        }
        if let Err(e) = self.context.store.touch_api_key(key_id, now).await {
            tracing::warn!(error = %e, key_id, "could not record API key use");
        }
    }

    pub fn profile(&self, caller: &Caller) -> UserProfile {
        profile_of(&caller.account)
    }

    /// `PUT` (`replace`) or `PATCH` of the profile.
    pub async fn update_profile(
        &self,
        caller: &Caller,
        update: ProfileUpdate,
        replace: bool,
    ) -> Result<UserProfile> {
        let current = &caller.account;
        // PUT: absent means cleared. PATCH: absent means unchanged.
        let pick = |new: Option<Option<String>>, old: &Option<String>| -> Option<String> {
            let value = match new {
                Some(v) => v,
                None if replace => None,
                None => old.clone(),
            };
            value
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let mut v = Validator::new();
        let name = match update.name {
            Some(Some(name)) => name.trim().to_string(),
            Some(None) => {
                v.add("name", "Name is required");
                String::new()
            }
            None if replace => {
                v.add("name", "Name is required");
                String::new()
            }
            None => current.name.clone(),
        };
        if !v.has("name") {
            check_person_name(&mut v, "name", &name);
        }
        let mut fields = ProfileFields {
            name,
            phone: pick(update.phone, &current.phone),
            address_line: pick(update.address_line, &current.address_line),
            city: pick(update.city, &current.city),
            state: pick(update.state, &current.state),
            postal_code: pick(update.postal_code, &current.postal_code),
            country: pick(update.country, &current.country),
        };
        if let Some(phone) = &fields.phone {
            let digits = phone.chars().filter(char::is_ascii_digit).count();
            v.check(
                phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c))
                    && (7..=15).contains(&digits),
                "phone",
                "Phone number must have 7 to 15 digits and only digits, spaces, +, -, ( and )",
            );
        }
        if let Some(line) = &fields.address_line {
            v.check(
                line.chars().count() <= 255,
                "address_line",
                "Address line must be 255 characters or less",
            );
            check_plain_text(&mut v, "address_line", line, false);
        }
        for (field, value) in [("city", &fields.city), ("state", &fields.state)] {
            if let Some(value) = value {
                v.check(
                    value.chars().count() <= 100,
                    field,
                    format!("{} must be 100 characters or less", title(field)),
                );
                check_plain_text(&mut v, field, value, false);
            }
        }
        if let Some(code) = &fields.postal_code {
            v.check(
                length_between(code, 2, 20)
                    && code
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' '),
                "postal_code",
                "Postal code must be 2 to 20 characters: letters, digits, hyphens and spaces",
            );
        }
        if let Some(country) = &fields.country {
            match countries::normalize(country) {
                Some(code) => fields.country = Some(code),
                None => v.add(
                    "country",
                    "Country must be an ISO 3166-1 alpha-2 code such as US, DE or IN",
                ),
            }
        }
        v.finish()?;
        // The currency follows the country only until money is involved in it: a switch would leave the
        // credits in the old currency unusable (see docs/api-design.md, Accounts). Money in another
        // currency (an operator's grant) does not hold it.
        let (from, to) = (
            countries::currency_for(current.country.as_deref()),
            countries::currency_for(fields.country.as_deref()),
        );
        if from != to
            && self
                .context
                .store
                .currency_in_use(&current.id, from.as_str())
                .await?
        {
            let wanted = match &fields.country {
                Some(code) => format!("Country {code} is billed in {to}"),
                None => format!("Without a country the account is billed in {to}"),
            };
            let mut v = Validator::new();
            v.add(
                "country",
                format!(
                    "{wanted}, but this account's currency is fixed to {from}: it has held credits, opened a deposit or been billed in {from}, and a change of currency could strand that money. Keep a country billed in {from}, or ask an operator"
                ),
            );
            v.finish()?;
        }
        let now = self.now();
        if !self
            .context
            .store
            .update_profile(&current.id, &fields, now)
            .await?
        {
            return Err(Error::not_found("Account", &current.id));
        }
        let updated = self
            .context
            .store
            .account_by_id(&current.id)
            .await?
            .ok_or_else(|| Error::not_found("Account", &current.id))?;
        Ok(profile_of(&updated))
    }

    /// Operators: a page of every account.
    pub async fn list_accounts(&self, page: PageRequest) -> Result<(Vec<AdminUser>, Pagination)> {
        let (rows, total) = self
            .context
            .store
            .list_accounts(page.offset(), page.limit)
            .await?;
        let users = rows
            .iter()
            .map(|row| AdminUser {
                profile: profile_of(row),
                disabled: row.disabled_at.is_some(),
            })
            .collect();
        Ok((users, Pagination::new(page, total)))
    }

    pub async fn account(&self, id: &str) -> Result<AccountRow> {
        self.context
            .store
            .account_by_id(id)
            .await?
            .ok_or_else(|| Error::not_found("User", id))
    }

    /// Operators name an account by its id or by its sign-in email, in every admin command.
    pub async fn account_by_id_or_email(&self, name: &str) -> Result<AccountRow> {
        let name = name.trim();
        let found = if name.contains('@') {
            self.context
                .store
                .account_by_email(&name.to_lowercase())
                .await?
        } else {
            self.context.store.account_by_id(name).await?
        };
        found.ok_or_else(|| Error::not_found("User", name))
    }
}

/// A valid Argon2 hash of a random password, verified against when the email is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3bPfYzxL0o0W8aXw6ZVrBDBmO6MNtEchnmfM5JqjhUQ";

fn title(field: &str) -> String {
    let mut c = field.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
        && !email.chars().any(|c| c.is_control() || is_format_char(c))
        && !domain.contains('@')
}

/// Person names: letters, spaces, hyphens, apostrophes; 2–100 characters.
fn check_person_name(v: &mut Validator, field: &str, name: &str) {
    let name = name.trim();
    if !length_between(name, 2, 100) {
        v.add(field, "Name must be between 2 and 100 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_alphabetic() || c == ' ' || c == '-' || c == '\'')
    {
        v.add(
            field,
            "Name must contain only letters, spaces, hyphens, and apostrophes",
        );
    }
}

/// Fields a billing profile still lacks.
pub fn missing_profile_fields(account: &AccountRow) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if account.name.trim().is_empty() {
        missing.push("name");
    }
    if account.address_line.is_none() {
        missing.push("address_line");
    }
    if account.postal_code.is_none() {
        missing.push("postal_code");
    }
    if account.country.is_none() {
        missing.push("country");
    }
    missing
}

pub fn profile_of(account: &AccountRow) -> UserProfile {
    UserProfile {
        id: account.id.clone(),
        email: account.email.clone(),
        name: account.name.clone(),
        phone: account.phone.clone(),
        address_line: account.address_line.clone(),
        city: account.city.clone(),
        state: account.state.clone(),
        postal_code: account.postal_code.clone(),
        country: account.country.clone(),
        currency: countries::currency_for(account.country.as_deref()),
        profile_complete: missing_profile_fields(account).is_empty(),
        admin: account.is_admin,
        created_at: format_ms(account.created_at),
    }
}

/// Who an account's own request is recorded as, in events and jobs.
pub fn actor(caller: &Caller) -> String {
    format!("user:{}", caller.account_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(valid_email("a@b.co"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("@b.co"));
        assert!(!valid_email("a b@c.co"));
        assert!(!valid_email("a@@b.co"));
        assert!(!valid_email("e\u{1b}[31m@x.io"));
        assert!(!valid_email("del\u{7f}@x.io"));
        assert!(!valid_email("a@x.io\u{202e}"));
        assert!(!valid_email("a\u{200b}@x.io"));
        assert!(valid_email("josé@example.com"));
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
