//! Per-request context (request id, start time, the caller's tier), reachable from anywhere that renders a
//! response for the request, including error paths and the panic handler.

use std::sync::{Arc, OnceLock};

use barrack_api::Tier;

#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    /// Server clock at the start of the request, epoch milliseconds.
    pub now_ms: i64,
    tier: Arc<OnceLock<Tier>>,
    account: Arc<OnceLock<String>>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

impl RequestContext {
    pub fn new(request_id: String, now_ms: i64) -> RequestContext {
        RequestContext {
            request_id,
            now_ms,
            tier: Arc::default(),
            account: Arc::default(),
        }
    }

    pub fn tier(&self) -> Option<Tier> {
        self.tier.get().copied()
    }

    pub fn account(&self) -> Option<&str> {
        self.account.get().map(String::as_str)
    }

    /// Runs `f` with this context as the current one.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CONTEXT.scope(self, f).await
    }
}

/// The current request's context, if called while serving one.
pub fn current() -> Option<RequestContext> {
    CONTEXT.try_with(Clone::clone).ok()
}

/// Records who is calling, for the envelope's `tier` and the request log.
pub fn set_caller(account_id: &str, tier: Tier) {
    let _ = CONTEXT.try_with(|c| {
        let _ = c.tier.set(tier);
        let _ = c.account.set(account_id.to_string());
    });
}
