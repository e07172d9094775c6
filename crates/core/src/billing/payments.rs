//! Payment providers: where deposits are paid, and how their confirmations are authenticated.
//!
//! A provider opens a checkout for a new deposit and verifies the webhooks it sends back. The deposit
//! service does the rest (validation, storage, crediting exactly once), the same for every provider.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use barrack_api::Currency;
use barrack_api::body;
use barrack_api::deposits::{DepositWebhookEvent, PAYMENT_SUCCEEDED, SIGNATURE_HEADER};
use hmac::{Hmac, Mac};
use rust_decimal::Decimal;
use sha2::Sha256;

use crate::Result;
use crate::platform::config::{PaymentProviderKind, PaymentsConfig};

type HmacSha256 = Hmac<Sha256>;

/// What a provider needs to open a checkout for a deposit.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    pub deposit_id: &'a str,
    pub account_id: &'a str,
    /// Credits the account receives.
    pub amount: Decimal,
    pub tax: Decimal,
    /// What the payer is charged.
    pub total_payable: Decimal,
    pub currency: Currency,
}

/// What the provider returned to complete the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// What the provider knows the payment by.
    pub payment_reference: String,
    /// Where the payer pays.
    pub checkout_url: Option<String>,
}

/// A webhook as it arrived: header names in lower case, and the raw body (signatures cover its exact
/// bytes, never a re-serialization).
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    pub headers: BTreeMap<String, String>,
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A verified event from a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    /// The deposit was paid: `amount` and `currency` as the provider reports them.
    Succeeded {
        deposit_id: String,
        amount: Decimal,
        currency: Currency,
    },
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookError {
    /// Not proven to come from the provider (401). The reason goes to the log only.
    Unauthenticated(SignatureProblem),
    /// Authentic, but not an event that can be acted on (400).
    Invalid { field: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureProblem {
    /// The server has no webhook secret: every webhook is refused.
    NoSecretConfigured,
    Missing,
    Malformed,
    Mismatch,
}

impl SignatureProblem {
    /// For the log.
    pub fn reason(self) -> &'static str {
        match self {
            SignatureProblem::NoSecretConfigured => "no webhook secret is configured",
            SignatureProblem::Missing => "the signature header is missing",
            SignatureProblem::Malformed => "the signature header is malformed",
            SignatureProblem::Mismatch => "the signature does not match the body",
        }
    }

    /// For the caller: says what to send, never what the server holds.
    pub fn public_message(self) -> String {
        match self {
            SignatureProblem::Missing => format!("Missing {SIGNATURE_HEADER} header"),
            SignatureProblem::Malformed => format!(
                "{SIGNATURE_HEADER} must be 'sha256=' followed by the hex HMAC-SHA256 of the request body"
            ),
            SignatureProblem::NoSecretConfigured | SignatureProblem::Mismatch => {
                "Invalid webhook signature".to_string()
            }
        }
    }
}

/// A payment service deposits are paid through.
#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// The name deposits record and show (`manual`).
    fn name(&self) -> &'static str;

    /// Opens a checkout for a new deposit.
    async fn create_checkout(&self, request: &CheckoutRequest<'_>) -> Result<Checkout>;

    /// Authenticates a webhook and reads its event.
    fn verify_webhook(&self, request: &WebhookRequest<'_>) -> Result<PaymentEvent, WebhookError>;
}

/// The provider the configuration names.
pub fn from_config(config: &PaymentsConfig) -> Arc<dyn PaymentProvider> {
    match config.provider {
        PaymentProviderKind::Manual => {
            let secret = match config.webhook_secret() {
                Ok(secret) => secret,
                Err(e) => {
                    tracing::error!(error = %e, "payment webhooks will be refused: the webhook secret is unusable");
                    None
                }
            };
            Arc::new(ManualProvider::new(secret))
        }
    }
}

/// No external payment service and no checkout page: a deposit completes through a webhook signed with the
/// configured secret (sent by whatever confirms payments) or an operator.
pub struct ManualProvider {
    secret: Option<Vec<u8>>,
}

impl ManualProvider {
    pub fn new(secret: Option<String>) -> ManualProvider {
        ManualProvider {
            secret: secret.map(String::into_bytes),
        }
    }
}

impl std::fmt::Debug for ManualProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManualProvider")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[async_trait]
impl PaymentProvider for ManualProvider {
    fn name(&self) -> &'static str {
        "manual"
    }

    async fn create_checkout(&self, request: &CheckoutRequest<'_>) -> Result<Checkout> {
        Ok(Checkout {
            payment_reference: request.deposit_id.to_string(),
            // No payment page: the payer pays as the operator arranges, confirmed by webhook or operator.
            checkout_url: None,
        })
    }

    fn verify_webhook(&self, request: &WebhookRequest<'_>) -> Result<PaymentEvent, WebhookError> {
        let secret = self.secret.as_deref().ok_or(WebhookError::Unauthenticated(
            SignatureProblem::NoSecretConfigured,
        ))?;
        verify_signature(secret, request.header(SIGNATURE_HEADER), request.body)
            .map_err(WebhookError::Unauthenticated)?;
        // Only an authentic body is parsed, and its amount is compared exactly; the provider's event is
        // fixed, so its first fault says enough.
        let event: DepositWebhookEvent = body::read_amounts(request.body).map_err(|e| {
            let (field, message) = e.fields().into_iter().next().unwrap_or_default();
            WebhookError::Invalid { field, message }
        })?;
        if event.event != PAYMENT_SUCCEEDED {
            return Err(WebhookError::Invalid {
                field: "event".into(),
                message: format!(
                    "Unsupported event '{}': expected {PAYMENT_SUCCEEDED}",
                    event.event
                ),
            });
        }
        Ok(PaymentEvent::Succeeded {
            deposit_id: event.deposit_id,
            amount: event.amount,
            currency: event.currency,
        })
    }
}

/// Checks `sha256=<hex HMAC-SHA256 of body>` in constant time.
pub fn verify_signature(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureProblem> {
    let header = header.ok_or(SignatureProblem::Missing)?;
    let signature_hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureProblem::Malformed)?;
    let expected = hex::decode(signature_hex).map_err(|_| SignatureProblem::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureProblem::Malformed);
    }
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureProblem::Mismatch)
}

/// The signature header value for `body`: `sha256=` and the hex HMAC-SHA256 under `secret`. What a sender
/// of webhooks computes.
pub fn sign_webhook(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec-test-0123456789";

    fn request<'a>(signature: Option<&str>, body: &'a [u8]) -> WebhookRequest<'a> {
        let mut headers = BTreeMap::new();
        if let Some(s) = signature {
            headers.insert("x-barrack-signature".to_string(), s.to_string());
        }
        WebhookRequest { headers, body }
    }

    #[test]
    fn signatures_are_hex_hmac_sha256_of_the_raw_body() {
        // Computed independently: printf '%s' '{"a":1}' | openssl dgst -sha256 -hmac whsec-test-0123456789
        assert_eq!(
            sign_webhook(SECRET, br#"{"a":1}"#),
            "sha256=7923f48af899b46d9209349a08b3b492ab35614c6e7adf131012f039044a3c04"
        );
        let body = br#"{"event": "payment.succeeded", "deposit_id": "BRK-A1B2C3P", "amount": "25.00", "currency": "USD"}"#;
        let good = sign_webhook(SECRET, body);
        assert!(verify_signature(SECRET.as_bytes(), Some(&good), body).is_ok());
        assert!(
            verify_signature(
                SECRET.as_bytes(),
                Some(&good.to_uppercase().replace("SHA256=", "sha256=")),
                body
            )
            .is_ok(),
            "hex digits in either case"
        );
        let altered = br#"{"event": "payment.succeeded", "deposit_id": "BRK-A1B2C3P", "amount": "2500", "currency": "USD"}"#;
        assert_eq!(
            verify_signature(SECRET.as_bytes(), Some(&good), altered),
            Err(SignatureProblem::Mismatch)
        );
        assert_eq!(
            verify_signature(b"another-secret-entirely", Some(&good), body),
            Err(SignatureProblem::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET.as_bytes(), None, body),
            Err(SignatureProblem::Missing)
        );
        for malformed in [
            "",
            "md5=abc",
            "sha256=",
            "sha256=xyz",
            "sha256=abc",
            &good[7..],
            "sha256=00",
        ] {
            assert_eq!(
                verify_signature(SECRET.as_bytes(), Some(malformed), body),
                Err(SignatureProblem::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn the_manual_provider_reads_only_authentic_events() {
        let provider = ManualProvider::new(Some(SECRET.into()));
        let body = br#"{"event": "payment.succeeded", "deposit_id": "BRK-A1B2C3P", "amount": "25.00", "currency": "USD"}"#;
        let signature = sign_webhook(SECRET, body);
        assert_eq!(
            provider.verify_webhook(&request(Some(&signature), body)),
            Ok(PaymentEvent::Succeeded {
                deposit_id: "BRK-A1B2C3P".into(),
                amount: "25.00".parse().unwrap(),
                currency: Currency::USD,
            })
        );
        // Not parsed before it is authenticated.
        assert_eq!(
            provider.verify_webhook(&request(None, b"{oops")),
            Err(WebhookError::Unauthenticated(SignatureProblem::Missing))
        );
        let other = br#"{"event": "payment.refunded", "deposit_id": "BRK-A1B2C3P", "amount": 25, "currency": "USD"}"#;
        let err = provider
            .verify_webhook(&request(Some(&sign_webhook(SECRET, other)), other))
            .unwrap_err();
        assert!(matches!(err, WebhookError::Invalid { field, .. } if field == "event"));
        let junk = b"[1, 2]";
        let err = provider
            .verify_webhook(&request(Some(&sign_webhook(SECRET, junk)), junk))
            .unwrap_err();
        assert!(matches!(err, WebhookError::Invalid { field, .. } if field == "body"));

        let unconfigured = ManualProvider::new(None);
        assert_eq!(
            unconfigured.verify_webhook(&request(Some(&signature), body)),
            Err(WebhookError::Unauthenticated(
                SignatureProblem::NoSecretConfigured
            ))
        );
        assert!(!format!("{provider:?}").contains(SECRET));
    }
}
