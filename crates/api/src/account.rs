//! Accounts, profiles, tokens and API keys (`spec/API.md` §4.3, §4.4).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Currency, Tier};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub name: String,
}

/// `POST /api/auth/token/`: exchange email and password for a token pair.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenObtainPair {
    pub email: String,
    pub password: String,
    /// The tier the session acts in (default `legacy`).
    #[serde(default)]
    pub tier: Option<Tier>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRefresh {
    pub refresh: String,
}

/// `POST /api/auth/token/refresh/`: a new access token and the refresh token that replaces the one
/// presented (each refresh token is good for one use).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessToken {
    pub access: String,
    pub refresh: String,
}

/// `POST /api/account/password/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// What a password change, a log-out or an operator's disable ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionsEnded {
    /// Token sessions (log-ins) and dashboard sign-ins revoked.
    pub sessions_revoked: u64,
    /// API keys revoked (only an operator's disable revokes keys).
    pub api_keys_revoked: u64,
}

/// `POST /api/admin/users/{id}/disable/` and `.../enable/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountAccess {
    pub user_id: String,
    pub disabled: bool,
    pub sessions_revoked: u64,
    pub api_keys_revoked: u64,
}

/// The billing profile of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserProfile {
    pub id: String,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    pub address_line: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, e.g. `IN`, `DE`, `US`.
    pub country: Option<String>,
    /// Follows the country: India → INR, European countries → EUR, others → USD.
    pub currency: Currency,
    /// Name, address line, postal code and country are all present.
    pub profile_complete: bool,
    pub admin: bool,
    pub created_at: String,
}

/// `PUT` replaces every editable field (an absent field is cleared, `name` is required);
/// `PATCH` changes only the fields present (`null` clears one).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub phone: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub address_line: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub city: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub state: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub postal_code: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub country: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    pub name: String,
    pub tier: Tier,
}

/// An API key as listed: everything but the secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A newly created API key; `key` is shown only in this response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    pub prefix: String,
    pub key: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeletedApiKey {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminCreateUser {
    pub email: String,
    pub password: String,
    pub name: String,
    #[serde(default, deserialize_with = "crate::rules::null_as_default")]
    pub admin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminUserList {
    pub users: Vec<AdminUser>,
    pub pagination: crate::Pagination,
}

/// An account as operators list it: its profile, and whether an operator has disabled it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminUser {
    #[serde(flatten)]
    pub profile: UserProfile,
    /// Disabled by an operator: it cannot sign in or authenticate in any way until enabled again.
    pub disabled: bool,
}

/// `POST /api/admin/accounts/{user_id}/credits/`: adds a `grant` entry to the account's ledger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantCredits {
    /// Exact decimal, as a string (`"25.00"`) or a number.
    #[serde(with = "crate::decimal::text")]
    #[schema(value_type = String, example = "25.00")]
    pub amount: Decimal,
    pub currency: Currency,
    #[serde(default, deserialize_with = "crate::rules::blank_as_none")]
    pub note: Option<String>,
}

/// `POST /api/admin/users/{user_id}/api-keys/`: a key for another account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminCreatedApiKey {
    pub user_id: String,
    #[serde(flatten)]
    pub key: CreatedApiKey,
}
