//! Failed log-ins slow down: per email (guessing one account's password) and per client address (trying
//! many accounts), each with a few free failures and then a delay that doubles with every further failure.
//! An attempt counts from the moment it is let through, before its password is checked: attempts sent at
//! once cannot all pass the check before the first of them fails.
//! Kept in memory, so each replica throttles on its own (see `docs/security.md`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
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
    /// Attempts let through whose outcome is not known yet: each counts as a failure until it ends.
    checking: u32,
    last: Instant,
    blocked_until: Instant,
}

impl Failures {
    fn new(now: Instant) -> Failures {
        Failures {
            count: 0,
            checking: 0,
            last: now,
            blocked_until: now,
        }
    }

    /// How long a new attempt must wait: while a delay runs, or while the attempts being checked
    /// already use up what is left of the free failures (after them, one attempt at a time).
    fn wait(&mut self, free: u32, now: Instant) -> Duration {
        if self.checking == 0 && now.saturating_duration_since(self.last) >= FORGET_AFTER {
            self.count = 0;
        }
        let delay = self.blocked_until.saturating_duration_since(now);
        if self.checking > 0 && self.count + self.checking >= free {
            delay.max(FIRST_DELAY)
        } else {
            delay
        }
    }

    fn failed(&mut self, free: u32, now: Instant) {
        if now.saturating_duration_since(self.last) >= FORGET_AFTER {
            self.count = 0;
        }
        self.count += 1;
        self.last = now;
        if self.count >= free {
            self.blocked_until = self.blocked_until.max(now + delay(self.count - free));
        }
    }
}

/// How an attempt the throttle let through ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The right password for a log-in: the email's failures are cleared.
    Succeeded,
    /// A wrong password.
    Failed,
    /// Nothing to count: the right current password of a password change, or no answer (an error
    /// before the password was checked).
    Withdrawn,
}

#[derive(Default)]
pub struct LoginThrottle {
    keys: Mutex<HashMap<String, Failures>>,
}

/// A password check the throttle let through. It counts as a failure from the moment it begins, so
/// that attempts sent together are held back as if each before it had failed; its outcome settles it.
/// Dropped without one (the request went away while its password was checked), it stays a failure.
#[must_use = "an attempt counts as failed unless its outcome says otherwise"]
pub struct Attempt {
    throttle: Arc<LoginThrottle>,
    email: String,
    address: IpAddr,
    ended: bool,
}

impl Attempt {
    /// The right password: a log-in succeeded, and the email's failures are cleared.
    pub fn succeeded(self) {
        self.end(Outcome::Succeeded)
    }

    /// A wrong password.
    pub fn failed(self) {
        self.end(Outcome::Failed)
    }

    /// Counts for nothing: the right current password of a password change, or an error that left the
    /// password unchecked.
    pub fn withdrawn(self) {
        self.end(Outcome::Withdrawn)
    }

    fn end(mut self, outcome: Outcome) {
        self.ended = true;
        self.throttle
            .end_at(&self.email, self.address, outcome, Instant::now());
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.ended {
            self.throttle
                .end_at(&self.email, self.address, Outcome::Failed, Instant::now());
        }
    }
}

impl LoginThrottle {
    /// Lets an attempt through, counted as a failure until it ends, or `Err(seconds to wait)` while the
    /// email or the address is held back. Checked and counted under one lock before the password is
    /// checked, so a held-back attempt costs no hashing and attempts sent at once get no more checks
    /// than the free failures.
    pub fn begin(self: &Arc<Self>, email: &str, address: IpAddr) -> Result<Attempt, u64> {
        self.begin_at(email, address, Instant::now())?;
        Ok(Attempt {
            throttle: self.clone(),
            email: email.to_string(),
            address,
            ended: false,
        })
    }

    fn begin_at(&self, email: &str, address: IpAddr, now: Instant) -> Result<(), u64> {
        let mut keys = self.keys.lock().expect("login throttle");
        if keys.len() >= MAX_TRACKED {
            keys.retain(|_, f| {
                f.checking > 0 || now.saturating_duration_since(f.last) < FORGET_AFTER
            });
        }
        let limits = [
            (email_key(email), FREE_FAILURES_PER_EMAIL),
            (address_key(address), FREE_FAILURES_PER_ADDRESS),
        ];
        let wait = limits
            .iter()
            .filter_map(|(key, free)| keys.get_mut(key).map(|f| f.wait(*free, now)))
            .max()
            .unwrap_or_default();
        if !wait.is_zero() {
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        for (key, _) in limits {
            keys.entry(key)
                .or_insert_with(|| Failures::new(now))
                .checking += 1;
        }
        Ok(())
    }

    fn end_at(&self, email: &str, address: IpAddr, outcome: Outcome, now: Instant) {
        let mut keys = self.keys.lock().expect("login throttle");
        for (key, free, is_email) in [
            (email_key(email), FREE_FAILURES_PER_EMAIL, true),
            (address_key(address), FREE_FAILURES_PER_ADDRESS, false),
        ] {
            let Some(entry) = keys.get_mut(&key) else {
                continue;
            };
            entry.checking = entry.checking.saturating_sub(1);
            match outcome {
                Outcome::Failed => entry.failed(free, now),
                // A log-in clears the email's failures (the address keeps its own).
                Outcome::Succeeded if is_email => {
                    entry.count = 0;
                    entry.blocked_until = now;
                }
                Outcome::Succeeded | Outcome::Withdrawn => {}
            }
            if entry.count == 0 && entry.checking == 0 {
                keys.remove(&key);
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

    /// One attempt from start to end at `now`: whether it was let through.
    fn attempt(
        throttle: &LoginThrottle,
        email: &str,
        address: IpAddr,
        outcome: Outcome,
        now: Instant,
    ) -> Result<(), u64> {
        throttle.begin_at(email, address, now)?;
        throttle.end_at(email, address, outcome, now);
        Ok(())
    }

    #[test]
    fn delays_start_after_the_free_failures_and_double() {
        let throttle = LoginThrottle::default();
        let here: IpAddr = "203.0.113.5".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES_PER_EMAIL - 1 {
            assert_eq!(
                attempt(&throttle, "a@x.com", here, Outcome::Failed, t0),
                Ok(())
            );
        }
        assert_eq!(
            attempt(&throttle, "A@X.com", here, Outcome::Failed, t0),
            Ok(())
        );
        assert_eq!(throttle.begin_at("a@x.com", here, t0), Err(1));
        assert_eq!(
            attempt(&throttle, "b@x.com", here, Outcome::Withdrawn, t0),
            Ok(()),
            "another email from the same address is not held back yet"
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            attempt(&throttle, "a@x.com", here, Outcome::Failed, t1),
            Ok(())
        );
        assert_eq!(throttle.begin_at("a@x.com", here, t1), Err(2));
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(
            attempt(&throttle, "a@x.com", here, Outcome::Failed, t2),
            Ok(())
        );
        assert_eq!(throttle.begin_at("a@x.com", here, t2), Err(4));
        let t3 = t2 + Duration::from_secs(4);
        assert_eq!(
            attempt(&throttle, "a@x.com", here, Outcome::Succeeded, t3),
            Ok(())
        );
        assert_eq!(
            attempt(&throttle, "a@x.com", here, Outcome::Failed, t3),
            Ok(())
        );
        assert_eq!(delay(40), LONGEST_DELAY);
    }

    #[test]
    fn attempts_being_checked_count_as_failures() {
        let throttle = LoginThrottle::default();
        let here: IpAddr = "203.0.113.5".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES_PER_EMAIL {
            assert_eq!(throttle.begin_at("a@x.com", here, t0), Ok(()));
        }
        assert_eq!(
            throttle.begin_at("a@x.com", here, t0),
            Err(1),
            "five checks under way hold the sixth back"
        );
        // Two end without counting (an error, a password change's right password): two more may start.
        throttle.end_at("a@x.com", here, Outcome::Withdrawn, t0);
        throttle.end_at("a@x.com", here, Outcome::Withdrawn, t0);
        assert_eq!(throttle.begin_at("a@x.com", here, t0), Ok(()));
        assert_eq!(throttle.begin_at("a@x.com", here, t0), Ok(()));
        assert_eq!(throttle.begin_at("a@x.com", here, t0), Err(1));
        for _ in 0..FREE_FAILURES_PER_EMAIL {
            throttle.end_at("a@x.com", here, Outcome::Failed, t0);
        }
        assert_eq!(throttle.begin_at("a@x.com", here, t0), Err(1));
        // Past the free failures, one attempt at a time once the delay is over.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(throttle.begin_at("a@x.com", here, t1), Ok(()));
        assert_eq!(throttle.begin_at("a@x.com", here, t1), Err(1));
        throttle.end_at("a@x.com", here, Outcome::Failed, t1);
        assert_eq!(throttle.begin_at("a@x.com", here, t1), Err(2));
    }

    #[test]
    fn a_dropped_attempt_counts_as_failed() {
        let throttle = Arc::new(LoginThrottle::default());
        let here: IpAddr = "203.0.113.5".parse().unwrap();
        for _ in 0..FREE_FAILURES_PER_EMAIL {
            drop(throttle.begin("a@x.com", here).unwrap());
        }
        assert!(throttle.begin("a@x.com", here).is_err());
        throttle.begin("b@x.com", here).unwrap().withdrawn();
        throttle.begin("b@x.com", here).unwrap().succeeded();
        assert!(
            throttle.keys.lock().unwrap().get("email:b@x.com").is_none(),
            "nothing is kept for an email without failures"
        );
    }

    #[test]
    fn many_emails_from_one_address_hold_the_address_back() {
        let throttle = LoginThrottle::default();
        let here: IpAddr = "203.0.113.5".parse().unwrap();
        let elsewhere: IpAddr = "198.51.100.9".parse().unwrap();
        let t0 = Instant::now();
        for n in 0..FREE_FAILURES_PER_ADDRESS {
            assert_eq!(
                throttle.begin_at(&format!("user{n}@x.com"), here, t0),
                Ok(())
            );
        }
        assert_eq!(
            throttle.begin_at("new@x.com", here, t0),
            Err(1),
            "twenty checks under way from one address"
        );
        for n in 0..FREE_FAILURES_PER_ADDRESS {
            throttle.end_at(&format!("user{n}@x.com"), here, Outcome::Failed, t0);
        }
        assert_eq!(throttle.begin_at("new@x.com", here, t0), Err(1));
        assert_eq!(
            attempt(&throttle, "new@x.com", elsewhere, Outcome::Failed, t0),
            Ok(())
        );
    }
}
