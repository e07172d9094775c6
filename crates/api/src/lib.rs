//! Wire types of the Barrack API: what goes over HTTP, shared by the server, the typed client and the CLI.
//!
//! These are not database rows; the server maps its domain values into them.

pub mod account;
pub mod ai;
pub mod billing;
pub mod body;
pub mod catalog;
pub mod decimal;
pub mod deposits;
pub mod envelope;
pub mod firewalls;
pub mod images;
pub mod instances;
pub mod labels;
pub mod ledger;
pub mod rules;
pub mod scripts;
pub mod simulation;
pub mod snapshots;
pub mod ssh_keys;
pub mod volumes;
pub mod webhooks;

pub use envelope::*;

/// The wire form of enums whose values are names (`"advanced"`, `"USD"`): a string and nothing else.
/// serde's derive also reads a unit variant from an object (`{"advanced": null}`), a form the API never
/// documented; an enum marked `#[serde(remote = "Self")]` keeps its derived reading of the name (and its
/// schema) and is read from a string only through this macro, so `{"tier": 5}` or `{"tier": {...}}` is
/// "Must be a string".
#[macro_export]
macro_rules! string_enum {
    ($($name:ty),+ $(,)?) => {$(
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <::std::string::String as ::serde::Deserialize>::deserialize(deserializer)?;
                <$name>::deserialize(::serde::de::IntoDeserializer::<D::Error>::into_deserializer(name))
            }
        }
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$name>::serialize(self, serializer)
            }
        }
    )+};
}

string_enum!(Tier, Currency);

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The two service tiers. A request acts in the tier of the API key that made it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(remote = "Self", rename_all = "lowercase")]
pub enum Tier {
    Legacy,
    Advanced,
}

impl Tier {
    pub const ALL: [Tier; 2] = [Tier::Legacy, Tier::Advanced];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Legacy => "legacy",
            Tier::Advanced => "advanced",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "legacy" => Some(Tier::Legacy),
            "advanced" => Some(Tier::Advanced),
            _ => None,
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Currencies credits are held in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(remote = "Self")]
pub enum Currency {
    USD,
    EUR,
    INR,
}

impl Currency {
    pub const ALL: [Currency; 3] = [Currency::USD, Currency::EUR, Currency::INR];

    pub fn as_str(self) -> &'static str {
        match self {
            Currency::USD => "USD",
            Currency::EUR => "EUR",
            Currency::INR => "INR",
        }
    }

    pub fn parse(s: &str) -> Option<Currency> {
        match s {
            "USD" => Some(Currency::USD),
            "EUR" => Some(Currency::EUR),
            "INR" => Some(Currency::INR),
            _ => None,
        }
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
