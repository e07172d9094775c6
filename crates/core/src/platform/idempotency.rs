//! Idempotency keys, the part services see: a request that came with a key runs inside a [`Claim`], and
//! the service's final transaction stores the request's response with its effect ([`commit`]), so a
//! retry after a crash between the commit and the answer replays the answer instead of acting twice.
//!
//! The HTTP layer claims the key, says how a result becomes the response body ([`set_renderer`]) and
//! answers retries; services only swap `tx.commit()` for `idempotency::commit(tx, &result)`.

use std::sync::{Arc, Mutex};

use barrack_store::Tx;
use serde::Serialize;

use crate::{Error, Result};

/// Turns a service's result into the response (status, body) the client will get.
pub type Renderer = Box<dyn Fn(serde_json::Value) -> (u16, String) + Send + Sync>;

/// A key the current request holds.
pub struct Claim {
    pub account_id: String,
    pub key: String,
    /// This request's token: only it may complete the claim.
    pub owner: String,
    renderer: Mutex<Option<Renderer>>,
    stored: Mutex<Option<(u16, String)>>,
}

tokio::task_local! {
    static CLAIM: Arc<Claim>;
}

impl Claim {
    pub fn new(account_id: String, key: String, owner: String) -> Arc<Claim> {
        Arc::new(Claim {
            account_id,
            key,
            owner,
            renderer: Mutex::new(None),
            stored: Mutex::new(None),
        })
    }

    /// Runs `f` (the request) holding this claim.
    pub async fn scope<F: Future>(self: Arc<Claim>, f: F) -> F::Output {
        CLAIM.scope(self, f).await
    }

    /// The response stored with the effect, once its transaction committed.
    pub fn stored(&self) -> Option<(u16, String)> {
        self.stored.lock().ok().and_then(|s| s.clone())
    }
}

/// Says how the current request renders a result; does nothing outside a claim.
pub fn set_renderer(renderer: Renderer) {
    let _ = CLAIM.try_with(|claim| {
        if let Ok(mut slot) = claim.renderer.lock() {
            *slot = Some(renderer);
        }
    });
}

/// Commits `tx`, and with it, when the request holds a key, the response `result` renders to. Fails
/// without committing when a retry took the claim over meanwhile (this request ran past its lease), so
/// the effect happens once.
pub async fn commit<T: Serialize>(mut tx: Tx, result: &T) -> Result<()> {
    let recorded = record(&mut tx, result).await?;
    tx.commit().await.map_err(Error::internal)?;
    committed(recorded);
    Ok(())
}

/// [`commit`] in two steps, for a transaction committed otherwise: the response stored in `tx`, before its
/// last statements; then, once it committed, [`committed`].
pub async fn record<T: Serialize>(tx: &mut Tx, result: &T) -> Result<Recorded> {
    Ok(Recorded(pending(tx, result).await?))
}

/// Says the transaction that stored the response committed: retries answer with it from now on.
pub fn committed(recorded: Recorded) {
    if let Some((claim, response)) = recorded.0
        && let Ok(mut stored) = claim.stored.lock()
    {
        *stored = Some(response);
    }
}

/// A response stored in a transaction not committed yet (none outside a claim).
#[must_use = "say the transaction committed with `committed`"]
pub struct Recorded(Pending);

type Pending = Option<(Arc<Claim>, (u16, String))>;

async fn pending<T: Serialize>(tx: &mut Tx, result: &T) -> Result<Pending> {
    let Ok(claim) = CLAIM.try_with(Arc::clone) else {
        return Ok(None);
    };
    let response = {
        let renderer = claim
            .renderer
            .lock()
            .map_err(|_| Error::Internal("idempotency renderer poisoned".into()))?;
        let Some(render) = renderer.as_ref() else {
            return Ok(None);
        };
        let value = serde_json::to_value(result).map_err(Error::internal)?;
        render(value)
    };
    let completed = barrack_store::idempotency::complete(
        tx,
        &claim.account_id,
        &claim.key,
        &claim.owner,
        response.0,
        &response.1,
    )
    .await?;
    if !completed {
        return Err(Error::conflict(
            "IDEMPOTENCY_IN_PROGRESS",
            "A retry with the same Idempotency-Key took over this request; its response is the one kept",
        ));
    }
    Ok(Some((claim, response)))
}

/// What makes two requests "the same" for a key: method, path and body, the body compared as JSON with
/// its keys sorted (so a client serialising fields in another order still matches), else byte for byte.
/// No body (zero bytes) reads as `{}`, as the body extractors read it, so a retry sending `{}` for a
/// first request that sent nothing (or the reverse) is the same request.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    let canonical = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => canonical_json(&value).into_bytes(),
        Err(_) => body.to_vec(),
    };
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update(b" ");
    hash.update(path.as_bytes());
    hash.update(b"\n");
    hash.update(&canonical);
    hex::encode(hash.finalize())
}

fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        canonical_json(v)
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// A key as clients may send it: 1 to 255 visible ASCII characters (a UUID, say).
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::field(
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_key_order_but_not_values() {
        let a = fingerprint(
            "POST",
            "/api/x/",
            br#"{"a": 1, "b": [1, {"d": 2, "c": 3}]}"#,
        );
        let b = fingerprint("POST", "/api/x/", br#"{"b":[1,{"c":3,"d":2}],"a":1}"#);
        assert_eq!(a, b);
        assert_ne!(
            a,
            fingerprint(
                "POST",
                "/api/x/",
                br#"{"a": 2, "b": [1, {"d": 2, "c": 3}]}"#
            )
        );
        assert_ne!(
            a,
            fingerprint(
                "POST",
                "/api/y/",
                br#"{"a": 1, "b": [1, {"d": 2, "c": 3}]}"#
            )
        );
    }

    #[test]
    fn no_body_is_the_empty_object() {
        let none = fingerprint("POST", "/api/instances/BRK-1/stop/", b"");
        assert_eq!(
            none,
            fingerprint("POST", "/api/instances/BRK-1/stop/", b"{}")
        );
        assert_eq!(
            none,
            fingerprint("POST", "/api/instances/BRK-1/stop/", b" { } ")
        );
        assert_ne!(
            none,
            fingerprint("POST", "/api/instances/BRK-1/stop/", b"[]")
        );
        assert_ne!(
            none,
            fingerprint("POST", "/api/instances/BRK-1/stop/", br#"{"a": 1}"#)
        );
    }

    #[test]
    fn keys_are_visible_ascii() {
        assert!(check_key("3f2b8c1e-9d4a-4c55-a1f0-2b7d1e3c9a10").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("has space").is_err());
        assert!(check_key(&"k".repeat(256)).is_err());
    }
}
