//! Time comes from a `Clock`, so tests and the simulated data centre can move it.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Real time in milliseconds since the Unix epoch, which moving the clock does not change: for what
    /// is measured with others. Leases between servers (job and idempotency claims), since every server
    /// follows a move at its own moment and a lease measured on the moved clock would look expired to
    /// one that followed it first; and webhook signature times, checked against the receiver's clock.
    fn real_ms(&self) -> i64 {
        system_now_ms()
    }

    /// Moves the clock forward; false for clocks that follow real time only.
    fn advance_ms(&self, _ms: i64) -> bool {
        false
    }

    /// Runs at least `offset_ms` ahead of real time: the offset stored for every server on the database.
    /// Only the simulation clock follows it.
    fn follow_offset(&self, _offset_ms: i64) {}
}

pub fn system_now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Real time.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        system_now_ms()
    }
}

/// Real time plus an offset that only grows: the clock of simulation mode, where an operator or a test
/// can jump a month ahead.
#[derive(Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    /// How far the clock has been moved ahead of real time.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        system_now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    fn advance_ms(&self, ms: i64) -> bool {
        self.offset_ms.fetch_add(ms.max(0), Ordering::Relaxed);
        true
    }

    fn follow_offset(&self, offset_ms: i64) {
        self.offset_ms.fetch_max(offset_ms, Ordering::Relaxed);
    }
}

/// A clock that stands still until moved: deterministic tests.
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn starting_at(ms: i64) -> ManualClock {
        ManualClock {
            now_ms: AtomicI64::new(ms),
        }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::Relaxed)
    }

    /// Its own time: a test's world has no other, and tests expire leases by moving it.
    fn real_ms(&self) -> i64 {
        self.now_ms()
    }

    fn advance_ms(&self, ms: i64) -> bool {
        self.now_ms.fetch_add(ms.max(0), Ordering::Relaxed);
        true
    }
}

/// ISO-8601 UTC with `Z`, whole seconds, as the docs show (`2025-01-15T10:30:00Z`).
pub fn format_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parses ISO-8601 / RFC 3339 into epoch milliseconds.
pub fn parse_iso(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_docs() {
        let ms = parse_iso("2025-01-15T10:30:00Z").unwrap();
        assert_eq!(format_ms(ms), "2025-01-15T10:30:00Z");
        assert_eq!(format_ms(ms + 999), "2025-01-15T10:30:00Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::starting_at(1000);
        assert_eq!(c.now_ms(), 1000);
        assert!(c.advance_ms(60_000));
        assert_eq!(c.now_ms(), 61_000);
        assert!(!SystemClock.advance_ms(1));
    }

    #[test]
    fn real_time_stays_where_moving_the_clock_leaves_it() {
        let c = OffsetClock::default();
        assert!(c.advance_ms(36_000_000));
        assert!(c.now_ms() - system_now_ms() >= 36_000_000 - 1_000);
        assert!((c.real_ms() - system_now_ms()).abs() < 1_000);
        let m = ManualClock::starting_at(1000);
        m.advance_ms(5_000);
        assert_eq!(m.real_ms(), 6_000);
    }
}
