//! Typed client for the Barrack API, over the same wire types the server uses.
//!
//! ```no_run
//! # async fn demo() -> Result<(), barrack_client::ClientError> {
//! let client = barrack_client::Client::builder("http://127.0.0.1:8080").api_key("sk_...").build()?;
//! let balance = client.balance().await?;
//! println!("{} {}", balance.data.balance, balance.data.currency);
//! # Ok(()) }
//! ```

mod ai;
mod billing;
mod deposits;
mod error;
mod firewalls;
mod instances;
mod labels;
mod scripts;
mod simulation;
mod snapshots;
mod volumes;
mod webhooks;

use std::time::Duration;

use barrack_api::account::{
    AccessToken, AccountAccess, AdminCreateUser, AdminCreatedApiKey, AdminUserList, ApiKeyList,
    CreateApiKeyRequest, CreatedApiKey, DeletedApiKey, GrantCredits, PasswordChange, ProfileUpdate,
    RegisterRequest, SessionsEnded, TokenObtainPair, TokenPair, TokenRefresh, UserProfile,
};
use barrack_api::catalog::{
    CapacityList, CatalogQuery, GpuSpecList, GpuStockList, OsImageList, PricingRequest,
    PricingResponse, RegionList, SetCapacityRequest,
};
use barrack_api::ledger::{CreditBalance, Transaction, TransactionList, TransactionQuery};
use barrack_api::{Envelope, ErrorResponse, PageQuery, Tier};
pub use error::ClientError;
pub use instances::InstanceActionKind;
pub use labels::{LabelledResource, with_labels};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
pub use webhooks::EventStream;

pub type Result<T> = std::result::Result<T, ClientError>;

/// Builds a [`Client`].
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    bearer: Option<String>,
    timeout: Duration,
    max_retries: u32,
}

impl ClientBuilder {
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// A session access token (`Authorization: Bearer`), instead of a key.
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries of a request answered 429 or 503 (default 3); 0 turns retrying off.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    pub fn build(self) -> Result<Client> {
        install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(same_origin_redirects())
            .build()
            .map_err(ClientError::Transport)?;
        Ok(Client {
            http,
            base_url: self.base_url.trim_end_matches('/').to_string(),
            api_key: self.api_key,
            bearer: self.bearer,
            max_retries: self.max_retries,
            idempotency_key: None,
        })
    }
}

/// Makes ring the process's TLS crypto provider, unless one is installed already. HTTP clients are built
/// only after it: reqwest's TLS is built without a provider of its own (ring compiles quickly and needs no
/// more than a C compiler), and building a client with none installed panics. Idempotent. (rustls marks
/// ring deprecated for lacking post-quantum key exchange, which these calls do without.)
#[allow(deprecated)]
pub fn install_tls_provider() {
    // An error only says a provider is installed already, which is all that is needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Follows redirects only within the server's origin: the `X-API-Key` header goes with every request, and
/// another host must never receive it.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same_origin || attempt.previous().len() > 5 {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// A Barrack API client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    bearer: Option<String>,
    max_retries: u32,
    /// Sent as `Idempotency-Key` with every POST (see [`Client::with_idempotency_key`]).
    idempotency_key: Option<String>,
}

/// Credentials are shown as present or not, never their value.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("api_key", &shown(&self.api_key))
            .field("bearer", &shown(&self.bearer))
            .field("max_retries", &self.max_retries)
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    #[test]
    fn debug_output_hides_credentials() {
        let client = super::Client::builder("http://127.0.0.1:1")
            .api_key("sk_secret_value_0123456789")
            .build()
            .unwrap();
        let shown = format!("{client:?} {:?}", client.with_bearer("eyJ.secret.token"));
        assert!(!shown.contains("secret_value"), "{shown}");
        assert!(!shown.contains("secret.token"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}

/// A raw answer: status, the `X-Request-Id` header and the JSON body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

impl Client {
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            bearer: None,
            timeout: Duration::from_secs(30),
            max_retries: 3,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The same client acting with another key.
    pub fn with_api_key(&self, key: impl Into<String>) -> Client {
        Client {
            api_key: Some(key.into()),
            bearer: None,
            ..self.clone()
        }
    }

    /// The same client acting with a session token.
    pub fn with_bearer(&self, token: impl Into<String>) -> Client {
        Client {
            api_key: None,
            bearer: Some(token.into()),
            ..self.clone()
        }
    }

    /// The same client sending `key` as `Idempotency-Key` with its POSTs: the server carries out the first
    /// request with the key once and answers every retry with the same response (for 24 hours). With a
    /// key, requests that may or may not have arrived (the connection failed) and requests the server
    /// says are still running (409 with `Retry-After`) are retried too, up to the retry limit.
    pub fn with_idempotency_key(&self, key: impl Into<String>) -> Client {
        Client {
            idempotency_key: Some(key.into()),
            ..self.clone()
        }
    }

    /// The same client without credentials.
    pub fn anonymous(&self) -> Client {
        Client {
            api_key: None,
            bearer: None,
            ..self.clone()
        }
    }

    /// Sends a request, retrying 429 and 503 with backoff (honouring `Retry-After`), and returns the raw answer.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<RawResponse> {
        self.raw_bytes(
            method,
            path,
            body.map(|b| serde_json::to_vec(b).expect("JSON values serialize")),
        )
        .await
    }

    /// Like [`Client::raw`], with the body as bytes (which need not be valid JSON).
    pub async fn raw_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse> {
        let url = format!("{}{}", self.base_url, path);
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(key) = &self.api_key {
                request = request.header("X-API-Key", key);
            } else if let Some(token) = &self.bearer {
                request = request.bearer_auth(token);
            }
            let idempotent = method == Method::POST && self.idempotency_key.is_some();
            if let (Some(key), true) = (&self.idempotency_key, method == Method::POST) {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(body) = &body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.clone());
            }
            let response = match request.send().await {
                Ok(response) => response,
                // Under a key a lost answer is safe to ask for again.
                Err(_) if idempotent && attempt < self.max_retries => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(ClientError::Transport(e)),
            };
            let status = response.status();
            let in_progress = idempotent
                && status == StatusCode::CONFLICT
                && response.headers().contains_key("retry-after");
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE
                || in_progress;
            if retryable && attempt < self.max_retries {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or_else(|| Duration::from_millis(200 << attempt));
                attempt += 1;
                tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                continue;
            }
            let headers = response.headers().clone();
            let text = response.text().await.map_err(ClientError::Transport)?;
            let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            return Ok(RawResponse {
                status,
                headers,
                body,
                text,
            });
        }
    }

    /// Sends a request and decodes a success body as `T`, or the error envelope as [`ClientError::Api`].
    pub async fn request<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let body = body.map(|b| serde_json::to_value(b).expect("request bodies serialize"));
        let raw = self.raw(method, path, body.as_ref()).await?;
        if raw.status.is_success() {
            return serde_json::from_value(raw.body).map_err(|e| ClientError::Decode {
                status: raw.status.as_u16(),
                message: e.to_string(),
                body: raw.text,
            });
        }
        Err(match serde_json::from_value::<ErrorResponse>(raw.body) {
            Ok(e) => ClientError::Api {
                status: raw.status.as_u16(),
                code: e.code,
                message: e.message,
                errors: e.errors.unwrap_or_default(),
                request_id: e.request_id,
            },
            Err(_) => ClientError::Decode {
                status: raw.status.as_u16(),
                message: "not the error envelope".into(),
                body: raw.text,
            },
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.request::<T, ()>(Method::GET, path, None).await
    }

    pub(crate) async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.request(Method::POST, path, Some(body)).await
    }

    // Catalog.

    pub async fn regions(&self, query: &CatalogQuery) -> Result<Envelope<RegionList>> {
        self.get(&with_query("/api/regions/", query)).await
    }

    pub async fn gpu_specs(&self, query: &CatalogQuery) -> Result<Envelope<GpuSpecList>> {
        self.get(&with_query("/api/gpu-specs/", query)).await
    }

    pub async fn gpu_stocks(&self, query: &CatalogQuery) -> Result<Envelope<GpuStockList>> {
        self.get(&with_query("/api/gpu-stocks/", query)).await
    }

    pub async fn os_images(&self, query: &CatalogQuery) -> Result<Envelope<OsImageList>> {
        self.get(&with_query("/api/os-images/", query)).await
    }

    pub async fn pricing(&self, request: &PricingRequest) -> Result<PricingResponse> {
        self.post("/api/pricing/", request).await
    }

    // Account.

    pub async fn register(&self, request: &RegisterRequest) -> Result<Envelope<UserProfile>> {
        self.post("/api/auth/register/", request).await
    }

    pub async fn obtain_token(&self, request: &TokenObtainPair) -> Result<Envelope<TokenPair>> {
        self.post("/api/auth/token/", request).await
    }

    pub async fn refresh_token(&self, refresh: &str) -> Result<Envelope<AccessToken>> {
        self.post(
            "/api/auth/token/refresh/",
            &TokenRefresh {
                refresh: refresh.to_string(),
            },
        )
        .await
    }

    /// Ends the session of a refresh token (its access token stops working too).
    pub async fn logout(&self, refresh: &str) -> Result<Envelope<SessionsEnded>> {
        self.post(
            "/api/auth/logout/",
            &TokenRefresh {
                refresh: refresh.to_string(),
            },
        )
        .await
    }

    /// Changes the password; every session of the account ends, API keys stay.
    pub async fn change_password(
        &self,
        current_password: &str,
        new_password: &str,
    ) -> Result<Envelope<SessionsEnded>> {
        self.post(
            "/api/account/password/",
            &PasswordChange {
                current_password: current_password.to_string(),
                new_password: new_password.to_string(),
            },
        )
        .await
    }

    pub async fn profile(&self) -> Result<Envelope<UserProfile>> {
        self.get("/api/account/profile/").await
    }

    pub async fn update_profile(&self, update: &ProfileUpdate) -> Result<Envelope<UserProfile>> {
        self.request(Method::PATCH, "/api/account/profile/", Some(update))
            .await
    }

    pub async fn replace_profile(&self, update: &ProfileUpdate) -> Result<Envelope<UserProfile>> {
        self.request(Method::PUT, "/api/account/profile/", Some(update))
            .await
    }

    pub async fn api_keys(&self) -> Result<Envelope<ApiKeyList>> {
        self.get("/api/api-keys/").await
    }

    pub async fn create_api_key(&self, name: &str, tier: Tier) -> Result<Envelope<CreatedApiKey>> {
        self.post(
            "/api/api-keys/",
            &CreateApiKeyRequest {
                name: name.to_string(),
                tier,
            },
        )
        .await
    }

    pub async fn delete_api_key(&self, id: &str) -> Result<Envelope<DeletedApiKey>> {
        self.request::<_, ()>(Method::DELETE, &format!("/api/api-keys/{id}/"), None)
            .await
    }

    pub async fn balance(&self) -> Result<Envelope<CreditBalance>> {
        self.get("/api/balance/").await
    }

    pub async fn transactions(
        &self,
        query: &TransactionQuery,
    ) -> Result<Envelope<TransactionList>> {
        self.get(&with_query("/api/transactions/", query)).await
    }

    // Operators.

    pub async fn admin_users(&self, page: &PageQuery) -> Result<Envelope<AdminUserList>> {
        self.get(&with_query("/api/admin/users/", page)).await
    }

    pub async fn admin_create_user(
        &self,
        request: &AdminCreateUser,
    ) -> Result<Envelope<UserProfile>> {
        self.post("/api/admin/users/", request).await
    }

    /// Disables an account: its sessions and API keys are revoked together.
    pub async fn admin_disable_user(&self, user_id: &str) -> Result<Envelope<AccountAccess>> {
        self.post(
            &format!("/api/admin/users/{user_id}/disable/"),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn admin_enable_user(&self, user_id: &str) -> Result<Envelope<AccountAccess>> {
        self.post(
            &format!("/api/admin/users/{user_id}/enable/"),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn admin_create_api_key(
        &self,
        user_id: &str,
        name: &str,
        tier: Tier,
    ) -> Result<Envelope<AdminCreatedApiKey>> {
        self.post(
            &format!("/api/admin/users/{user_id}/api-keys/"),
            &CreateApiKeyRequest {
                name: name.to_string(),
                tier,
            },
        )
        .await
    }

    pub async fn admin_grant_credits(
        &self,
        user_id: &str,
        grant: &GrantCredits,
    ) -> Result<Envelope<Transaction>> {
        self.post(&format!("/api/admin/accounts/{user_id}/credits/"), grant)
            .await
    }

    pub async fn admin_capacity(&self) -> Result<Envelope<CapacityList>> {
        self.get("/api/admin/capacity/").await
    }

    pub async fn admin_set_capacity(
        &self,
        request: &SetCapacityRequest,
    ) -> Result<Envelope<CapacityList>> {
        self.request(Method::PUT, "/api/admin/capacity/", Some(request))
            .await
    }
}

/// Appends `query` (skipping absent fields) to `path`.
pub(crate) fn with_query<Q: Serialize>(path: &str, query: &Q) -> String {
    match serde_urlencoded_query(query) {
        q if q.is_empty() => path.to_string(),
        q => format!("{path}?{q}"),
    }
}

fn serde_urlencoded_query<Q: Serialize>(query: &Q) -> String {
    let value = serde_json::to_value(query).unwrap_or_default();
    let mut out = Vec::new();
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            out.push(format!("{}={}", encode(&k), encode(&text)));
        }
    }
    out.join("&")
}

pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
