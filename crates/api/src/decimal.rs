//! Exact decimals on the wire.
//!
//! Amounts are `rust_decimal::Decimal` everywhere in the code. They are written as JSON numbers, as the
//! published docs show them (`9.96`, `0.0293`, and integral values such as `10` without a fraction). They are
//! read from either a JSON string (`"25.00"`, exact) or a JSON number (taken digit for digit as written).

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serializer, de};

/// Serializes a decimal as a JSON number: integral values as integers, others as the shortest float that
/// reads back as the same decimal.
pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    let value = value.normalize();
    if value.scale() == 0
        && let Ok(int) = i64::try_from(value)
    {
        return serializer.serialize_i64(int);
    }
    let float: f64 = value.try_into().map_err(serde::ser::Error::custom)?;
    serializer.serialize_f64(float)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Float(f64),
    }
    match Raw::deserialize(deserializer)
        .map_err(|_| de::Error::custom("expected a decimal number or a string holding one"))?
    {
        Raw::Text(s) => parse(&s).map_err(de::Error::custom),
        Raw::Int(i) => Ok(Decimal::from(i)),
        // The shortest representation of an f64 is what the sender wrote, so parse that text.
        Raw::Float(f) => parse(&f.to_string()).map_err(de::Error::custom),
    }
}

/// Parses a decimal written in plain notation: digits, optionally a point and more digits, after an
/// optional minus, as a JSON number is written without an exponent. Nothing else is read as an amount
/// (no spaces, `+`, `_` or exponent), so what was sent is exactly what is charged or credited.
pub fn parse(text: &str) -> Result<Decimal, String> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let plain = !whole.is_empty()
        && !fraction.is_empty()
        && whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit());
    if !plain {
        return Err(format!(
            "'{text}' is not a decimal number: write digits, optionally a point and more digits, \
             such as 25.50"
        ));
    }
    text.parse::<Decimal>()
        .map_err(|_| format!("'{text}' has more digits than an amount can hold"))
}

/// The same, for `Option<Decimal>` fields.
pub mod option {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Decimal>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::serialize(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Decimal>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super")] Decimal);
        Ok(Option::<Wrap>::deserialize(deserializer)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize, Deserialize)]
    struct Amount(#[serde(with = "super")] Decimal);

    fn json(d: &str) -> String {
        serde_json::to_string(&Amount(d.parse().unwrap())).unwrap()
    }

    #[test]
    fn writes_numbers_as_the_docs_show_them() {
        assert_eq!(json("9.96"), "9.96");
        assert_eq!(json("0.0293"), "0.0293");
        assert_eq!(json("10"), "10");
        assert_eq!(json("10.00"), "10");
        assert_eq!(json("0.166"), "0.166");
        assert_eq!(json("1195.2"), "1195.2");
        assert_eq!(json("0"), "0");
    }

    #[test]
    fn reads_strings_and_numbers_exactly() {
        let read = |s: &str| serde_json::from_str::<Amount>(s).map(|a| a.0);
        assert_eq!(
            read("\"25.00\"").unwrap(),
            "25.00".parse::<Decimal>().unwrap()
        );
        assert_eq!(read("0.1").unwrap(), "0.1".parse::<Decimal>().unwrap());
        assert_eq!(read("7").unwrap(), Decimal::from(7));
        assert!(read("\"abc\"").is_err());
        assert!(read("true").is_err());
        assert_eq!(
            read("1e2").unwrap(),
            Decimal::from(100),
            "a JSON number's exponent"
        );
    }

    #[test]
    fn strings_hold_plain_decimals_only() {
        for good in ["25", "25.50", "-3.1", "0.000001", "007"] {
            assert_eq!(parse(good).unwrap(), good.parse::<Decimal>().unwrap());
        }
        for bad in [
            " 10", "10 ", "+10", "1_000", "1e3", "1.", ".5", "", "-", "1.2.3", "0x10", "١٢",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("not a decimal number"), "{bad}: {e}");
        }
        assert!(parse(&"9".repeat(40)).unwrap_err().contains("more digits"));
    }
}
