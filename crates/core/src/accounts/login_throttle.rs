//! Failed log-ins slow down: per email (guessing one account's password) and per client address (trying
//! many accounts), each with a few free failures and then a delay that doubles with every further failure.
//! An attempt counts as a failure from the moment it is let through, before its password is checked, and
//! is taken back when the password turns out right: attempts sent at once cannot all pass the check
//! before the first of them fails, and one whose server stops mid-check stays counted.
//! The counts are rows of the database (`login_failures`), so every replica throttles with the others'
//! failures: a guesser gains nothing by spreading attempts over servers.

use std::net::IpAddr;

use barrack_store::Store;
use barrack_store::login_failures::{self, LoginFailuresRow};

use crate::platform::clock::system_now_ms;
use crate::{Error, Result};

/// Failures allowed before delays start: per email, and per address (higher, for users behind one NAT).
pub const FREE_FAILURES_PER_EMAIL: u32 = 5;
pub const FREE_FAILURES_PER_ADDRESS: u32 = 20;
/// The first delay (ms), doubled with each further failure up to the longest.
const FIRST_DELAY_MS: i64 = 1_000;
const LONGEST_DELAY_MS: i64 = 15 * 60 * 1_000;
/// A key with no attempt for this long starts afresh.
const FORGET_AFTER_MS: i64 = 60 * 60 * 1_000;

/// The client's address as the server works it out (its connection's, or the one a trusted proxy
/// names), in a request's extensions for handlers outside the server's own routes (the dashboard's
/// sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

#[derive(Clone)]
pub struct LoginThrottle {
    store: Store,
}

/// A password check the throttle let through, already counted as a failure; its outcome says whether
/// it stays one. Dropped without one (the request went away while its password was checked), it does.
#[must_use = "an attempt counts as failed unless its outcome says otherwise"]
pub struct Attempt {
    store: Store,
    email: Counted,
    address: Counted,
}

/// A key an attempt was counted on, and the hold it found and left (epoch ms), so that taking the
/// attempt back also takes back the longer hold it set.
struct Counted {
    key: String,
    free: u32,
    hold: (i64, i64),
}

impl Attempt {
    /// The right password: a log-in succeeded, so the email's failures are forgotten; the address's
    /// count is taken back.
    pub async fn succeeded(self) {
        let now = system_now_ms();
        let done = async {
            self.store.clear_login_failures(&self.email.key).await?;
            take_back(&self.store, &self.address).await?;
            // Now and then, not on every attempt: forgotten rows are harmless until then.
            self.store
                .purge_login_failures(now - FORGET_AFTER_MS, now)
                .await
        };
        if let Err(e) = done.await {
            tracing::warn!(error = %e, "a log-in's attempt stays counted as a failure");
        }
    }

    /// A wrong password: it was counted when it was let through.
    pub fn failed(self) {}

    /// Counts for nothing: the right current password of a password change, or an error that left the
    /// password unchecked.
    pub async fn withdrawn(self) {
        let done = async {
            take_back(&self.store, &self.email).await?;
            take_back(&self.store, &self.address).await
        };
        if let Err(e) = done.await {
            tracing::warn!(error = %e, "an attempt that counts for nothing stays counted as a failure");
        }
    }
}

async fn take_back(store: &Store, counted: &Counted) -> barrack_store::Result<()> {
    store
        .take_back_login_failure(&counted.key, i64::from(counted.free), counted.hold)
        .await
}

impl LoginThrottle {
    pub fn new(store: Store) -> LoginThrottle {
        LoginThrottle { store }
    }

    /// Lets an attempt through, counted as a failure until it ends, or 429 with the seconds to wait
    /// while the email or the address is held back. Checked and counted in one transaction, with both
    /// keys' rows locked, before the password is checked: a held-back attempt costs no hashing, and
    /// attempts sent at once, to any server, get no more checks than the free failures.
    pub async fn begin(&self, email: &str, address: IpAddr) -> Result<Attempt> {
        let now = system_now_ms();
        let keys = [
            (email_key(email), FREE_FAILURES_PER_EMAIL),
            (address_key(address), FREE_FAILURES_PER_ADDRESS),
        ];
        let mut tx = self.store.begin().await?;
        let mut rows = Vec::with_capacity(keys.len());
        // Always the email's row first, then the address's: no two attempts wait on each other.
        for (key, _) in &keys {
            rows.push(login_failures::lock(&mut tx, key).await?);
        }
        let wait_ms = rows.iter().map(|row| wait_ms(row, now)).max().unwrap_or(0);
        if wait_ms > 0 {
            drop(tx);
            return Err(Error::RateLimited {
                retry_after_seconds: (wait_ms as u64).div_ceil(1000).max(1),
            });
        }
        let mut counted = Vec::with_capacity(keys.len());
        for (row, (key, free)) in rows.iter_mut().zip(keys) {
            let before = row.blocked_until;
            count_attempt(row, free, now);
            login_failures::set(&mut tx, row).await?;
            counted.push(Counted {
                key,
                free,
                hold: (before, row.blocked_until),
            });
        }
        tx.commit().await?;
        let [email, address] = <[Counted; 2]>::try_from(counted)
            .unwrap_or_else(|_| unreachable!("an email and an address"));
        Ok(Attempt {
            store: self.store.clone(),
            email,
            address,
        })
    }
}

/// How long (ms) a new attempt on this key must wait at `now`.
fn wait_ms(row: &LoginFailuresRow, now: i64) -> i64 {
    (row.blocked_until - now).max(0)
}

/// The key's row once an attempt is let through at `now`: one more failure (after an hour without any,
/// the first), and past the free ones a delay before the next.
fn count_attempt(row: &mut LoginFailuresRow, free: u32, now: i64) {
    if now - row.last_at >= FORGET_AFTER_MS {
        row.failures = 0;
    }
    row.failures += 1;
    row.last_at = now;
    let free = i64::from(free);
    if row.failures >= free {
        row.blocked_until = row.blocked_until.max(now + delay_ms(row.failures - free));
    }
}

/// The delay after the `extra`-th failure beyond the free ones (0-based): 1 s, 2 s, 4 s, … up to 15 min.
fn delay_ms(extra: i64) -> i64 {
    (FIRST_DELAY_MS << extra.clamp(0, 20)).min(LONGEST_DELAY_MS)
}

fn email_key(email: &str) -> String {
    format!("email:{}", email.trim().to_lowercase())
}

/// An IPv4 address on its own; an IPv6 address by its /64, the block one subscriber is usually given
/// (so that a guesser cannot walk through the addresses of its own network).
fn address_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => format!("address:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("address:{v4}"),
            None => {
                let s = v6.segments();
                format!("address:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> LoginFailuresRow {
        LoginFailuresRow {
            key: email_key("a@x.com"),
            failures: 0,
            last_at: 0,
            blocked_until: 0,
        }
    }

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn delays_start_at_the_last_free_failure_and_double() {
        let mut r = row();
        for _ in 0..FREE_FAILURES_PER_EMAIL - 1 {
            assert_eq!(wait_ms(&r, T0), 0);
            count_attempt(&mut r, FREE_FAILURES_PER_EMAIL, T0);
        }
        assert_eq!(wait_ms(&r, T0), 0, "the fifth attempt is let through");
        count_attempt(&mut r, FREE_FAILURES_PER_EMAIL, T0);
        assert_eq!(
            wait_ms(&r, T0),
            1_000,
            "then one second, counted while it is checked"
        );
        let t1 = T0 + 1_000;
        assert_eq!(wait_ms(&r, t1), 0);
        count_attempt(&mut r, FREE_FAILURES_PER_EMAIL, t1);
        assert_eq!(wait_ms(&r, t1), 2_000);
        let t2 = t1 + 2_000;
        count_attempt(&mut r, FREE_FAILURES_PER_EMAIL, t2);
        assert_eq!(wait_ms(&r, t2), 4_000);
        assert_eq!(delay_ms(40), LONGEST_DELAY_MS);
        assert_eq!(delay_ms(9), LONGEST_DELAY_MS.min(512_000));
    }

    #[test]
    fn an_hour_without_attempts_starts_afresh() {
        let mut r = row();
        for _ in 0..FREE_FAILURES_PER_EMAIL + 3 {
            count_attempt(&mut r, FREE_FAILURES_PER_EMAIL, T0);
        }
        let later = T0 + FORGET_AFTER_MS;
        assert_eq!(wait_ms(&r, later), 0);
        count_attempt(&mut r, FREE_FAILURES_PER_EMAIL, later);
        assert_eq!(r.failures, 1);
        assert_eq!(wait_ms(&r, later), 0);
    }

    #[test]
    fn addresses_are_keyed_as_one_subscriber_has_them() {
        let v6 = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(
            v6("2001:db8:1:2:aaaa::1"),
            v6("2001:db8:1:2:bbbb:cccc:dddd:eeee"),
            "one /64"
        );
        assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
        assert_eq!(v6("::ffff:203.0.113.5"), v6("203.0.113.5"));
        assert_ne!(v6("203.0.113.5"), v6("203.0.113.6"));
        assert_eq!(email_key(" A@X.com "), email_key("a@x.com"));
    }
}
