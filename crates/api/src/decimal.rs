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

/// For a request's amounts: written as a JSON string, which the server reads digit for digit (a JSON
/// number is a float to most JSON libraries, exact only to [`EXACT_DIGITS`] digits); read as
/// [`deserialize`] reads them.
pub mod text {
    use rust_decimal::Decimal;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        super::deserialize(deserializer)
    }
}

/// The significant digits a JSON number written with a fraction or an exponent keeps: such a number is
/// read as a binary float, exact to 15 digits.
pub const EXACT_DIGITS: usize = 15;

/// The member of a JSON text holding a number written with a fraction or an exponent and more
/// significant digits than a float holds (`""` for a number outside any object), if there is one:
/// `5.0000000000000000001` would be read as `5`, silently. Checked on the raw text before a body with
/// amounts is parsed, so such an amount is refused on its field; it can be sent exactly as a string.
pub fn inexact_number(json: &[u8]) -> Option<String> {
    let mut member = (0, 0);
    let mut last_string = (0, 0);
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                last_string = (start, i.min(json.len()));
                i += 1;
            }
            b':' => {
                member = last_string;
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                if inexact(&json[start..i]) {
                    return Some(String::from_utf8_lossy(&json[member.0..member.1]).into_owned());
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The message for the member [`inexact_number`] found.
pub fn inexact_number_message() -> String {
    format!(
        "A number with a fraction or an exponent is read exactly to {EXACT_DIGITS} significant \
         digits, between 1e-307 and 1e308; this one is not (send it as a string)"
    )
}

/// Whether a float cannot hold the number written: more significant digits than it keeps, or out of its
/// range (`1e400` is no float, `1e-400` would be read as 0).
fn inexact(number: &[u8]) -> bool {
    let digits = significant_digits(number);
    if digits > EXACT_DIGITS {
        return true;
    }
    if digits == 0 {
        return false;
    }
    let read = std::str::from_utf8(number)
        .ok()
        .and_then(|text| text.parse::<f64>().ok());
    !read.is_some_and(|float| float.is_normal())
}

/// The significant digits of a number written with a fraction or an exponent; 0 for an integer, which
/// serde reads exactly or refuses.
fn significant_digits(number: &[u8]) -> usize {
    if !number.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return 0;
    }
    let mantissa = number
        .split(|b| matches!(b, b'e' | b'E'))
        .next()
        .unwrap_or_default();
    let digits: Vec<u8> = mantissa
        .iter()
        .copied()
        .filter(u8::is_ascii_digit)
        .collect();
    let first = digits.iter().position(|&d| d != b'0');
    let last = digits.iter().rposition(|&d| d != b'0');
    match (first, last) {
        (Some(first), Some(last)) => last - first + 1,
        _ => 0,
    }
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

    #[test]
    fn numbers_a_float_cannot_hold_are_found_with_their_member() {
        let found = |body: &str| inexact_number(body.as_bytes());
        for exact in [
            r#"{"amount": 25.50, "n": 123456789012345678901234}"#,
            r#"{"amount": 1.000000000000000000000, "tiny": 0.000000000000001}"#,
            r#"{"amount": 123456789.012345, "e": 2.5e300, "s": "1.00000000000000000001"}"#,
            r#"{"a\":": [0.1, -0.0000123456789012345]}"#,
        ] {
            assert_eq!(found(exact), None, "{exact}");
        }
        let amount = r#"{"currency": "USD", "amount": 5.0000000000000000001}"#;
        assert_eq!(found(amount).as_deref(), Some("amount"));
        let size = r#"{"volumes": [{"size": 1.2345678901234567e2}]}"#;
        assert_eq!(found(size).as_deref(), Some("size"));
        let y = r#"{"x": "a:b", "y": [1, 3.14159265358979323]}"#;
        assert_eq!(found(y).as_deref(), Some("y"));
        assert_eq!(found("0.12345678901234567").as_deref(), Some(""));
        for out_of_range in ["1e400", "-1E+309", "1e-400", "2.5e-320"] {
            let body = format!(r#"{{"amount": {out_of_range}}}"#);
            assert_eq!(found(&body).as_deref(), Some("amount"), "{out_of_range}");
        }
        for in_range in ["1e300", "0.0", "0e-999", "-2.5e-300", "1e308"] {
            let body = format!(r#"{{"amount": {in_range}}}"#);
            assert_eq!(found(&body), None, "{in_range}");
        }
    }

    #[test]
    fn request_amounts_are_written_as_strings_and_read_back_exactly() {
        #[derive(Serialize, Deserialize)]
        struct Request(#[serde(with = "super::text")] Decimal);
        let amount: Decimal = "1.0000000000000000001".parse().unwrap();
        let written = serde_json::to_string(&Request(amount)).unwrap();
        assert_eq!(written, "\"1.0000000000000000001\"");
        assert_eq!(serde_json::from_str::<Request>(&written).unwrap().0, amount);
        assert_eq!(
            serde_json::from_str::<Request>("25.5").unwrap().0,
            Decimal::new(255, 1)
        );
    }
}
