//! Webhook deliveries over HTTP and HTTPS: each POST goes to the address the delivery checked, never to
//! one the name resolves to afterwards, and redirects are not followed (they could lead anywhere).
//!
//! HTTPS receivers' certificates are verified against the platform's CA store and, for private receivers,
//! the CAs of the operator's `[webhooks] ca_bundle_file`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use barrack_core::platform::webhooks::{Post, WebhookSender};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::OnceCell;

/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct HttpWebhookSender {
    /// The TLS set-up of every HTTPS delivery, or why there is none (no CA to verify against). Reading
    /// the platform's CA store takes tens of milliseconds, so it is built on a blocking thread, started
    /// with the sender, rather than before the server's first answer.
    tls: Arc<OnceCell<Result<ClientConfig, String>>>,
    /// The operator's CAs, read at start so that a bad bundle stops it.
    extra_roots: Arc<Vec<CertificateDer<'static>>>,
}

impl HttpWebhookSender {
    /// A sender trusting the platform's CAs and those of the PEM file `ca_bundle`. A bundle that cannot be
    /// read or holds no certificate is an error (the server does not start); a machine without a CA store
    /// and without a bundle still sends over HTTP, and its HTTPS deliveries fail saying why.
    pub fn new(ca_bundle: Option<&Path>) -> anyhow::Result<HttpWebhookSender> {
        let extra = match ca_bundle {
            Some(path) => read_ca_bundle(path)?,
            None => Vec::new(),
        };
        let sender = HttpWebhookSender {
            tls: Arc::new(OnceCell::new()),
            extra_roots: Arc::new(extra),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (tls, extra_roots) = (sender.tls.clone(), sender.extra_roots.clone());
            runtime.spawn(async move {
                tls_of(&tls, &extra_roots).await;
            });
        }
        Ok(sender)
    }
}

/// The TLS set-up `tls` holds, built there first if it holds none yet.
async fn tls_of<'t>(
    tls: &'t OnceCell<Result<ClientConfig, String>>,
    extra_roots: &Arc<Vec<CertificateDer<'static>>>,
) -> &'t Result<ClientConfig, String> {
    tls.get_or_init(|| {
        let extra_roots = extra_roots.clone();
        async move {
            tokio::task::spawn_blocking(move || tls_config(extra_roots.to_vec()))
                .await
                .unwrap_or_else(|e| Err(format!("the TLS set-up failed: {e}")))
        }
    })
    .await
}

/// The certificates of a PEM file.
fn read_ca_bundle(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("webhooks.ca_bundle_file: cannot read {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "webhooks.ca_bundle_file: {} holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}

/// The server's TLS cryptography: ring, which builds with a C compiler alone. (rustls marks it deprecated
/// for lacking post-quantum key exchange, which these calls do without.)
#[allow(deprecated)]
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Makes [`crypto_provider`] the process's, unless one is installed already: reqwest's TLS has none of its
/// own, and building an HTTP client with none installed panics. Idempotent.
pub fn install_crypto_provider() {
    // An error only says a provider is installed already.
    let _ = crypto_provider().install_default();
}

fn tls_config(extra_roots: Vec<CertificateDer<'static>>) -> Result<ClientConfig, String> {
    let provider = Arc::new(crypto_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(|e| format!("no CA to verify HTTPS receivers against: {e}"))?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(&self, post: Post<'_>) -> Result<u16, String> {
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .user_agent(concat!("Barrack-Webhooks/", env!("CARGO_PKG_VERSION")));
        match tls_of(&self.tls, &self.extra_roots).await {
            Ok(tls) => client = client.tls_backend_preconfigured(tls.clone()),
            Err(why) if post.url.scheme() == "https" => return Err(why.clone()),
            // Plain HTTP needs no CA; an empty set keeps reqwest from looking for the missing store.
            Err(_) => client = client.tls_certs_only([]),
        }
        if let Some(url::Host::Domain(name)) = post.url.host() {
            client = client.resolve(name, post.address);
        }
        let client = client.build().map_err(|e| e.to_string())?;
        let mut request = client.post(post.url.as_str()).body(post.body.to_string());
        for (name, value) in post.headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(answer) => Ok(answer.status().as_u16()),
            Err(e) if e.is_timeout() => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
            Err(e) => Err(format!("cannot reach the receiver: {}", error_chain(&e))),
        }
    }
}

/// An error with its causes (a TLS failure says which certificate check failed only in its sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_that_cannot_be_read_or_holds_no_certificate_stops_the_start() {
        let dir = std::env::temp_dir().join(format!("barrack-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let error = HttpWebhookSender::new(Some(&missing)).err().unwrap();
        assert!(format!("{error:#}").contains("missing.pem"), "{error:#}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = HttpWebhookSender::new(Some(&empty)).err().unwrap();
        assert!(
            error.to_string().contains("holds no PEM certificate"),
            "{error:#}"
        );
        let garbled = dir.join("garbled.pem");
        std::fs::write(
            &garbled,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(HttpWebhookSender::new(Some(&garbled)).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
