//! Failed log-ins slow down: per email (guessing one account's password) and per client address (trying
//! many accounts), each with a few free failures and then a delay that doubles with every further failure.
//! Kept in memory, so each replica throttles on its own (see `docs/security.md`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before delays start: per email, and per address (higher, for users behind one NAT).
pub const FREE_FAILURES_PER_EMAIL: u32 = 5;
pub const FREE_FAILURES_PER_ADDRESS: u32 = 20;
/// The first delay, doubled with each further failure up to the longest.
const FIRST_DELAY: Duration = Duration::from_secs(1);
const LONGEST_DELAY: Duration = Duration::from_secs(15 * 60);
/// A key with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Beyond this many keys, forgotten ones are dropped.
const MAX_TRACKED: usize = 100_000;

/// The client's address as the server works it out (its connection's, or the one a trusted proxy
/// names), in a request's extensions for handlers outside the server's own routes (the dashboard's
/// sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

#[derive(Default)]
pub struct LoginThrottle {
    keys: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    /// `Err(seconds to wait)` while the email or the address is held back; checked before the password,
    /// so a held-back attempt costs no hashing.
    pub fn check(&self, email: &str, address: IpAddr) -> Result<(), u64> {
        self.check_at(email, address, Instant::now())
    }

    pub fn failed(&self, email: &str, address: IpAddr) {
        self.failed_at(email, address, Instant::now())
    }

    /// A successful log-in clears the email's failures (the address keeps its own).
    pub fn succeeded(&self, email: &str) {
        self.keys
            .lock()
            .expect("login throttle")
            .remove(&email_key(email));
    }

    fn check_at(&self, email: &str, address: IpAddr, now: Instant) -> Result<(), u64> {
        let keys = self.keys.lock().expect("login throttle");
        let wait = [email_key(email), address_key(address)]
            .iter()
            .filter_map(|k| keys.get(k))
            .map(|f| f.blocked_until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.as_secs_f64().ceil().max(1.0) as u64)
        }
    }

    fn failed_at(&self, email: &str, address: IpAddr, now: Instant) {
        let mut keys = self.keys.lock().expect("login throttle");
        if keys.len() >= MAX_TRACKED {
            keys.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
        }
        for (key, free) in [
            (email_key(email), FREE_FAILURES_PER_EMAIL),
            (address_key(address), FREE_FAILURES_PER_ADDRESS),
        ] {
            let entry = keys.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                blocked_until: now,
            });
            if now.saturating_duration_since(entry.last) >= FORGET_AFTER {
                entry.count = 0;
            }
            entry.count += 1;
            entry.last = now;
            if entry.count >= free {
                entry.blocked_until = now + delay(entry.count - free);
            }
        }
    }
}

/// The delay after the `extra`-th failure beyond the free ones (0-based): 1 s, 2 s, 4 s, … up to 15 min.
fn delay(extra: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(1u32.checked_shl(extra.min(20)).unwrap_or(u32::MAX))
        .min(LONGEST_DELAY)
}

fn email_key(email: &str) -> String {
    format!("email:{}", email.trim().to_lowercase())
}

fn address_key(address: IpAddr) -> String {
    format!("address:{address}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_and_double() {
        let throttle = LoginThrottle::default();
        let here: IpAddr = "203.0.113.5".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES_PER_EMAIL - 1 {
            assert_eq!(throttle.check_at("a@x.com", here, t0), Ok(()));
            throttle.failed_at("a@x.com", here, t0);
        }
        assert_eq!(throttle.check_at("a@x.com", here, t0), Ok(()));
        throttle.failed_at("A@X.com", here, t0);
        assert_eq!(throttle.check_at("a@x.com", here, t0), Err(1));
        assert_eq!(
            throttle.check_at("b@x.com", here, t0),
            Ok(()),
            "another email from the same address is not held back yet"
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(throttle.check_at("a@x.com", here, t1), Ok(()));
        throttle.failed_at("a@x.com", here, t1);
        assert_eq!(throttle.check_at("a@x.com", here, t1), Err(2));
        throttle.failed_at("a@x.com", here, t1);
        assert_eq!(throttle.check_at("a@x.com", here, t1), Err(4));
        throttle.succeeded("a@x.com");
        assert_eq!(throttle.check_at("a@x.com", here, t1), Ok(()));
        assert_eq!(delay(40), LONGEST_DELAY);
    }

    #[test]
    fn many_emails_from_one_address_hold_the_address_back() {
        let throttle = LoginThrottle::default();
        let here: IpAddr = "203.0.113.5".parse().unwrap();
        let elsewhere: IpAddr = "198.51.100.9".parse().unwrap();
        let t0 = Instant::now();
        for n in 0..FREE_FAILURES_PER_ADDRESS {
            throttle.failed_at(&format!("user{n}@x.com"), here, t0);
        }
        assert_eq!(throttle.check_at("new@x.com", here, t0), Err(1));
        assert_eq!(throttle.check_at("new@x.com", elsewhere, t0), Ok(()));
    }
}
