//! Money is exact: integer micro-units (10⁻⁶) in the database, `Decimal` in code and at the edges.

use rust_decimal::{Decimal, RoundingStrategy};

pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// Converts to micro-units; `None` if the amount has more than 6 decimal places or does not fit.
pub fn to_micros(amount: Decimal) -> Option<i64> {
    let scaled = amount.checked_mul(Decimal::from(MICROS_PER_UNIT))?;
    if scaled.fract() != Decimal::ZERO {
        return None;
    }
    i64::try_from(scaled).ok()
}

pub fn from_micros(micros: i64) -> Decimal {
    Decimal::new(micros, 6).normalize()
}

/// Rounds a rate for display the way the published docs do (4 decimal places: 0.029296875 → 0.0293).
pub fn display_rate(rate: Decimal) -> Decimal {
    rate.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// An amount as a billing record states it: exact (trailing zeros dropped).
pub fn exact_amount(amount: Decimal) -> Decimal {
    amount.normalize()
}

/// What an account holds, as a refusal states it: to the cent like every amount shown, rounded down, so
/// that with what is needed rounded up ([`needed_amount`]) a shortfall never reads as enough.
pub fn held_amount(amount: Decimal) -> Decimal {
    amount
        .round_dp_with_strategy(2, RoundingStrategy::ToNegativeInfinity)
        .normalize()
}

/// What a refused request needed, as the refusal states it: to the cent, rounded up.
pub fn needed_amount(amount: Decimal) -> Decimal {
    amount
        .round_dp_with_strategy(2, RoundingStrategy::ToPositiveInfinity)
        .normalize()
}

/// Rounds an amount of money for display (2 decimal places).
pub fn display_amount(amount: Decimal) -> Decimal {
    amount
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// The per-minute rate of an hourly one, in micro-units: hourly / 60, rounded half away from zero. A
/// minute is charged exactly this, so `per_minute_rate × minutes = total_cost` holds in every record.
pub fn per_minute_micros(hourly: Decimal) -> i64 {
    let micros = (hourly * Decimal::from(MICROS_PER_UNIT) / Decimal::from(60))
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(micros).unwrap_or(i64::MAX)
}

/// The per-minute rate charged for an hourly one, as billing records and quotes show it (to the
/// micro-unit, not display-rounded: it is what each minute costs).
pub fn per_minute_rate(hourly: Decimal) -> Decimal {
    from_micros(per_minute_micros(hourly))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn micros_round_trip_exactly() {
        assert_eq!(to_micros(d("25.00")), Some(25_000_000));
        assert_eq!(to_micros(d("0.000001")), Some(1));
        assert_eq!(to_micros(d("0.0000001")), None);
        assert_eq!(from_micros(25_000_000), d("25"));
        assert_eq!(from_micros(-1_500_000), d("-1.5"));
    }

    #[test]
    fn display_rounding_matches_the_docs() {
        // 100 GB of NVMe at 0.30 per TB-hour, TB = 1024 GB.
        assert_eq!(display_rate(d("0.30") * d("100") / d("1024")), d("0.0293"));
        assert_eq!(display_rate(d("9.96") / d("60")), d("0.166"));
    }

    #[test]
    fn a_shortfall_never_reads_as_enough() {
        assert_eq!(needed_amount(d("211.9296875")), d("211.93"));
        assert_eq!(held_amount(d("211.9296875")), d("211.92"));
        assert_eq!(needed_amount(d("46.349296875")), d("46.35"));
        assert_eq!(
            (held_amount(d("5")), needed_amount(d("5.00"))),
            (d("5"), d("5"))
        );
        // Held just under what is needed: still two different figures.
        assert!(held_amount(d("211.929")) < needed_amount(d("211.9296875")));
    }
}
