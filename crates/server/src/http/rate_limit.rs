//! Per-client rate limiting: a token bucket per account (or, without valid credentials, per client
//! address), in memory.
//!
//! Each replica limits on its own; behind a load balancer the effective limit is the sum of the replicas'.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use barrack_core::platform::resets::ResetsSeen;

/// What a request was granted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_seconds: u64,
    /// Seconds until one more request is allowed (0 when allowed).
    pub retry_after_seconds: u64,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    /// The buckets, and the resets of the simulation they were filled since.
    buckets: Mutex<(i64, HashMap<u64, Bucket>)>,
    resets: Arc<ResetsSeen>,
    // Clients are keyed by a salted hash, so the map never holds a secret.
    hasher: RandomState,
}

/// Beyond this many clients, full buckets are forgotten.
const MAX_TRACKED: usize = 100_000;

impl RateLimiter {
    /// `requests` per `window_seconds`; `None` when limiting is off (`requests = 0`). Every bucket is full
    /// again when the simulation is reset (`resets` moves).
    pub fn new(requests: u32, window_seconds: u32, resets: Arc<ResetsSeen>) -> Option<RateLimiter> {
        (requests > 0).then(|| RateLimiter {
            capacity: f64::from(requests),
            per_second: f64::from(requests) / f64::from(window_seconds.max(1)),
            buckets: Mutex::new((resets.get(), HashMap::new())),
            resets,
            hasher: RandomState::new(),
        })
    }

    pub fn check(&self, client: impl Hash) -> Decision {
        self.check_at(self.hasher.hash_one(client), Instant::now())
    }

    fn check_at(&self, key: u64, now: Instant) -> Decision {
        let mut guard = self.buckets.lock().expect("rate limiter");
        let (filled_since, buckets) = &mut *guard;
        let resets = self.resets.get();
        if *filled_since != resets {
            buckets.clear();
            *filled_since = resets;
        }
        if buckets.len() >= MAX_TRACKED {
            let (capacity, rate) = (self.capacity, self.per_second);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < capacity
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.capacity);
        bucket.updated = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let missing = self.capacity - bucket.tokens;
        Decision {
            allowed,
            limit: self.capacity as u32,
            remaining: bucket.tokens.floor().max(0.0) as u32,
            reset_seconds: (missing / self.per_second).ceil() as u64,
            retry_after_seconds: if allowed {
                0
            } else {
                ((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_the_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(3, 60, Default::default()).unwrap();
        let t0 = Instant::now();
        for remaining in [2, 1, 0] {
            let d = limiter.check_at(1, t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
        }
        let denied = limiter.check_at(1, t0);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_seconds, 20);
        assert!(
            limiter.check_at(2, t0).allowed,
            "other clients have their own bucket"
        );
        assert!(limiter.check_at(1, t0 + Duration::from_secs(20)).allowed);
        assert!(RateLimiter::new(0, 60, Default::default()).is_none());
    }
}
