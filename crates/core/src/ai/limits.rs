//! Requests and tokens per minute per caller (API key or session), in fixed one-minute windows, in
//! memory: each replica limits on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::platform::resets::ResetsSeen;

const WINDOW: Duration = Duration::from_secs(60);
/// Beyond this many callers, windows that have ended are forgotten.
const MAX_TRACKED: usize = 100_000;

/// Where a caller stands after a call was admitted: what the `x-ratelimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateStatus {
    /// 0 when that limit is off.
    pub limit_requests: u32,
    pub remaining_requests: u32,
    pub limit_tokens: u32,
    pub remaining_tokens: u32,
    /// Seconds until the window ends.
    pub reset_seconds: u64,
}

struct Window {
    started: Instant,
    requests: u32,
    tokens: u64,
}

pub struct AiLimiter {
    requests_per_minute: u32,
    tokens_per_minute: u32,
    /// The windows, and the resets of the simulation they were counted since.
    windows: Mutex<(i64, HashMap<String, Window>)>,
    resets: Arc<ResetsSeen>,
}

impl AiLimiter {
    /// Limits that start over when the simulation is reset (`resets` moves).
    pub fn new(
        requests_per_minute: u32,
        tokens_per_minute: u32,
        resets: Arc<ResetsSeen>,
    ) -> AiLimiter {
        AiLimiter {
            requests_per_minute,
            tokens_per_minute,
            windows: Mutex::new((resets.get(), HashMap::new())),
            resets,
        }
    }

    /// Tokens a caller may use a minute; 0 when that limit is off.
    pub fn tokens_per_minute(&self) -> u32 {
        self.tokens_per_minute
    }

    /// Admits a call of up to `tokens` tokens, or says in how many seconds to retry.
    pub fn admit(&self, caller: &str, tokens: u64) -> Result<RateStatus, u64> {
        let now = Instant::now();
        let mut guard = self.windows.lock().expect("AI limiter");
        let (counted_since, windows) = &mut *guard;
        let resets = self.resets.get();
        if *counted_since != resets {
            windows.clear();
            *counted_since = resets;
        }
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
        }
        // The key is copied only for a caller's first call.
        if !windows.contains_key(caller) {
            windows.insert(
                caller.to_string(),
                Window {
                    started: now,
                    requests: 0,
                    tokens: 0,
                },
            );
        }
        let window = windows.get_mut(caller).expect("inserted above");
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                requests: 0,
                tokens: 0,
            };
        }
        let reset = WINDOW
            .saturating_sub(now.duration_since(window.started))
            .as_secs()
            .max(1);
        let rpm = self.requests_per_minute;
        let tpm = u64::from(self.tokens_per_minute);
        if (rpm > 0 && window.requests >= rpm) || (tpm > 0 && window.tokens + tokens > tpm) {
            return Err(reset);
        }
        window.requests += 1;
        window.tokens += tokens;
        Ok(RateStatus {
            limit_requests: rpm,
            remaining_requests: rpm.saturating_sub(window.requests),
            limit_tokens: self.tokens_per_minute,
            remaining_tokens: tpm.saturating_sub(window.tokens) as u32,
            reset_seconds: reset,
        })
    }

    /// Where `caller` stands now, admitting nothing: what a refused call's `x-ratelimit-*` headers say.
    pub fn status(&self, caller: &str) -> RateStatus {
        let now = Instant::now();
        let guard = self.windows.lock().expect("AI limiter");
        let current = guard
            .1
            .get(caller)
            .filter(|w| now.duration_since(w.started) < WINDOW);
        let (requests, tokens, reset) = match current {
            Some(w) => (
                w.requests,
                w.tokens,
                WINDOW
                    .saturating_sub(now.duration_since(w.started))
                    .as_secs()
                    .max(1),
            ),
            None => (0, 0, WINDOW.as_secs()),
        };
        let tpm = u64::from(self.tokens_per_minute);
        RateStatus {
            limit_requests: self.requests_per_minute,
            remaining_requests: self.requests_per_minute.saturating_sub(requests),
            limit_tokens: self.tokens_per_minute,
            remaining_tokens: tpm.saturating_sub(tokens) as u32,
            reset_seconds: reset,
        }
    }

    /// Gives back tokens admitted but not used (the reply was shorter than its maximum).
    pub fn release(&self, caller: &str, tokens: u64) {
        let mut guard = self.windows.lock().expect("AI limiter");
        if let Some(window) = guard.1.get_mut(caller) {
            window.tokens = window.tokens.saturating_sub(tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_tokens_are_limited_per_caller() {
        let limiter = AiLimiter::new(2, 100, Default::default());
        assert_eq!(limiter.admit("a", 40).unwrap().remaining_requests, 1);
        assert!(limiter.admit("a", 70).is_err());
        limiter.release("a", 30);
        assert_eq!(limiter.admit("a", 70).unwrap().remaining_tokens, 20);
        assert!(limiter.admit("a", 1).is_err());
        let refused = limiter.status("a");
        assert_eq!(
            (refused.remaining_requests, refused.remaining_tokens),
            (0, 20)
        );
        assert_eq!(limiter.status("nobody").remaining_requests, 2);
        assert!(limiter.admit("b", 100).is_ok());
        let unlimited = AiLimiter::new(0, 0, Default::default());
        for _ in 0..1000 {
            assert!(unlimited.admit("a", 1_000_000).is_ok());
        }
    }

    #[test]
    fn a_reset_of_the_simulation_starts_the_windows_over() {
        let resets = Arc::new(ResetsSeen::default());
        let limiter = AiLimiter::new(1, 0, resets.clone());
        assert!(limiter.admit("a", 1).is_ok());
        assert!(limiter.admit("a", 1).is_err());
        resets.observe(1);
        assert!(
            limiter.admit("a", 1).is_ok(),
            "counted anew after the reset"
        );
        assert!(limiter.admit("a", 1).is_err());
        resets.observe(1);
        assert!(
            limiter.admit("a", 1).is_err(),
            "the same reset twice is one"
        );
    }
}
