//! What every page shares: the navigation bar, errors at fields, and formatting of amounts and states.

use std::collections::BTreeMap;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use barrack_api::Currency;
use barrack_core::accounts::web_sessions::WebSession;
use rust_decimal::Decimal;

use crate::error::WebError;

/// The header of every page: who is signed in, the form token, and which section is open.
pub struct Nav {
    pub signed_in: bool,
    pub email: String,
    pub csrf: String,
    pub active: &'static str,
    /// Operator accounts see the operator pages.
    pub operator: bool,
}

impl Nav {
    pub fn new(session: &WebSession, active: &'static str) -> Nav {
        Nav {
            signed_in: true,
            email: session.caller.account.email.clone(),
            csrf: session.csrf_token.clone(),
            active,
            operator: session.caller.is_admin(),
        }
    }

    pub fn anonymous() -> Nav {
        Nav {
            signed_in: false,
            email: String::new(),
            csrf: String::new(),
            active: "",
            operator: false,
        }
    }

    /// `aria-current` for the link of the open section.
    pub fn current(&self, section: &str) -> &'static str {
        if self.active == section {
            "page"
        } else {
            "false"
        }
    }
}

/// The API's messages per field, shown next to the fields; `general` for what belongs to no field.
#[derive(Default)]
pub struct Errors {
    pub fields: BTreeMap<String, Vec<String>>,
    pub general: Option<String>,
    /// Where the general message points to fix it (add credits, complete the profile).
    pub link: Option<(&'static str, &'static str)>,
}

impl Errors {
    /// [`Errors::from_error`] for a form whose fields name other resources or a new name: a reference
    /// not found, or a name taken, is shown at its field. `fields` pairs how the message starts
    /// ("SSH key", "An instance named") with the field.
    pub fn from_error_at(
        e: barrack_core::Error,
        fields: &[(&str, &str)],
    ) -> Result<Errors, WebError> {
        use barrack_core::Error as E;
        let message = match &e {
            E::NotFound(message) | E::Conflict { message, .. } | E::PayloadTooLarge(message) => {
                Some(message)
            }
            _ => None,
        };
        let field = message.and_then(|message| {
            fields
                .iter()
                .find(|(start, _)| message.starts_with(start))
                .map(|(_, field)| (field.to_string(), plain(message)))
        });
        match field {
            Some((field, message)) => Ok(Errors {
                fields: [(field, vec![message])].into(),
                ..Errors::default()
            }),
            None => Errors::from_error(e),
        }
    }

    /// Sorts a service error into field messages or a general one; errors that are not the user's to fix
    /// (a missing page, an internal failure) stay errors.
    pub fn from_error(e: barrack_core::Error) -> Result<Errors, WebError> {
        use barrack_core::Error as E;
        let mut errors = Errors::default();
        match e {
            E::Validation {
                message,
                errors: fields,
            } => {
                if fields.is_empty() {
                    errors.general = Some(plain(&message));
                }
                errors.fields = fields
                    .into_iter()
                    .map(|(field, messages)| (field, messages.iter().map(|m| plain(m)).collect()))
                    .collect();
            }
            E::InsufficientBalance(message) => {
                errors.general = Some(plain(&message));
                errors.link = Some(("/account#credits", "Add credits"));
            }
            E::ProfileIncomplete(missing) => {
                errors.general = Some(format!(
                    "Complete your billing profile first: missing {}",
                    profile_labels(&missing)
                ));
                errors.link = Some(("/account#profile", "Complete your profile"));
            }
            E::Conflict { .. }
            | E::Forbidden(_)
            | E::GpuUnavailable(_)
            | E::PublicIpUnavailable(_)
            | E::RegionUnavailable(_)
            | E::PayloadTooLarge(_) => errors.general = Some(plain(&e.public_message())),
            other => return Err(WebError::Domain(other)),
        }
        Ok(errors)
    }

    /// The field's messages as sentences, one after another.
    pub fn at(&self, field: &str) -> String {
        self.fields
            .get(field)
            .map(|messages| {
                messages
                    .iter()
                    .map(|m| {
                        let m = m.trim_end();
                        if m.ends_with(['.', '!', '?']) {
                            m.to_string()
                        } else {
                            format!("{m}.")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    pub fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// Messages of fields the form does not show (`shown`: names separated by commas), so none is lost.
    pub fn others(&self, shown: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| !shown.split(',').any(|s| s == k.as_str()))
            .map(|(k, v)| format!("{}: {}", plain(k), v.join(" ")))
            .collect()
    }

    /// A region field's message said with the regions the page offers (the session's tier's), not every
    /// region of the platform; an empty choice is asked for.
    pub fn regions_offered(&mut self, typed: &str, offered: &[String]) {
        self.choice_offered("region", "region", typed, offered);
    }

    /// A GPU model field's message said with the models the page offers (not legacy models of other
    /// tiers); an empty choice is asked for.
    pub fn gpu_models_offered(&mut self, typed: &str, offered: &[String]) {
        self.choice_offered("gpu_model", "GPU model", typed, offered);
    }

    fn choice_offered(&mut self, field: &str, what: &str, typed: &str, offered: &[String]) {
        let unknown = format!("Unknown {what}");
        let named = format!("{} ", capitalised(what));
        if let Some(messages) = self.fields.get_mut(field) {
            for message in messages.iter_mut() {
                if message.starts_with(&unknown) || message.starts_with(&named) {
                    *message = if typed.is_empty() {
                        format!("Choose a {what}")
                    } else {
                        format!(
                            "Unknown {what} '{typed}'. Choose one of {}",
                            offered.join(", ")
                        )
                    };
                }
            }
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// How the forms label the API's field names, for messages that name them.
const FIELD_LABELS: [(&str, &str); 14] = [
    ("address_line", "Billing address"),
    ("postal_code", "Postal code"),
    ("image_name", "Boot image"),
    ("volume_id", "Volume"),
    ("port_range_min", "From port"),
    ("port_range_max", "To port"),
    ("remote_ip_prefix", "Remote CIDR"),
    ("cloud_init", "Cloud-init"),
    ("gpu_count", "GPU count"),
    ("gpu_model", "GPU model"),
    ("instance_name", "Instance name"),
    ("ssh_key", "SSH key"),
    ("script_id", "Startup script"),
    ("max_tokens", "Longest reply"),
];

/// Phrases of the API's messages that use a field's name as a word of the sentence, said without it (the
/// label would not read: "its prompt and Longest reply of reply").
const PHRASES: [(&str, &str); 2] = [
    (
        "its prompt and max_tokens of reply",
        "its prompt and the longest reply it asks for",
    ),
    ("lower max_tokens", "ask for a shorter reply"),
];

/// Messages of the API that name several fields at once, said as the form shows them.
const WHOLE_MESSAGES: [(&str, &str); 1] = [(
    "image_name is required (or boot from a volume with volume_id and boot_from_volume: true)",
    "Choose a boot image, or a volume to boot from",
)];

/// The billing profile's missing fields by the profile form's labels.
pub fn profile_labels(missing: &[&str]) -> String {
    missing
        .iter()
        .map(|field| match *field {
            "name" => "Full name",
            "country" => "Country",
            other => FIELD_LABELS
                .iter()
                .find(|(name, _)| *name == other)
                .map_or(other, |(_, label)| label),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An API message as a page says it: the form's labels for field names (`port_range_max` is "To port")
/// and amounts as the page shows money (`49.9765625 INR` is ₹49.98). The API's own messages keep the
/// field names.
pub fn plain(message: &str) -> String {
    if let Some((_, whole)) = WHOLE_MESSAGES.iter().find(|(m, _)| *m == message) {
        return whole.to_string();
    }
    let phrased = PHRASES
        .iter()
        .fold(message.to_string(), |m, (phrase, said)| {
            m.replace(phrase, said)
        });
    let message = phrased.as_str();
    // Words (letters, digits, `_` and inner points) and single other characters.
    let mut tokens: Vec<&str> = Vec::new();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let mut chars = message.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if word(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !word(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            // A point that ends a word ends the sentence.
            let text = &message[i..end];
            let trimmed = text.trim_end_matches('.');
            tokens.push(trimmed);
            if trimmed.len() < text.len() {
                tokens.push(&text[trimmed.len()..]);
            }
        } else {
            tokens.push(&message[i..i + c.len_utf8()]);
        }
    }
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        let amount = (tokens.get(i + 1) == Some(&" "))
            .then(|| tokens.get(i + 2).and_then(|c| Currency::parse(c)))
            .flatten()
            .zip(barrack_api::decimal::parse(token).ok());
        if let Some((currency, amount)) = amount {
            out.push_str(&money(amount, currency));
            i += 3;
            continue;
        }
        match FIELD_LABELS.iter().find(|(name, _)| *name == token) {
            Some((_, label)) => out.push_str(label),
            None => out.push_str(token),
        }
        i += 1;
    }
    out
}

/// A list page with its filters (region, status, kind). When the service refuses a filter (an unknown
/// region or status), the page is built again without filters and answers 400 with the service's
/// messages at the filter's fields: never the whole list as if it were filtered, nor a page that names
/// no field. `build(true)` is the page as asked, `build(false)` the unfiltered one.
pub async fn filtered_list<P, Fut>(
    build: impl Fn(bool) -> Fut,
    errors_of: impl FnOnce(&mut P) -> &mut Errors,
) -> Result<Response, WebError>
where
    P: Template,
    Fut: Future<Output = Result<P, WebError>>,
{
    match build(true).await {
        Ok(page) => ok(&page),
        Err(WebError::Domain(e @ barrack_core::Error::Validation { .. })) => {
            let mut page = build(false).await?;
            *errors_of(&mut page) = Errors::from_error(e)?;
            render(StatusCode::BAD_REQUEST, &page)
        }
        Err(e) => Err(e),
    }
}

/// Renders a page with a status.
pub fn render(status: StatusCode, page: &impl Template) -> Result<Response, WebError> {
    let html = page.render().map_err(|e| WebError::Render(e.to_string()))?;
    Ok((status, Html(html)).into_response())
}

pub fn ok(page: &impl Template) -> Result<Response, WebError> {
    render(StatusCode::OK, page)
}

/// An amount with its currency's symbol, to the cent; an amount under one that cents cannot show (a
/// rate, a call's cost) to 4 decimals as the API shows rates, or to the ledger's 6 under a cent.
pub fn money(amount: Decimal, currency: Currency) -> String {
    let symbol = match currency {
        Currency::USD => "$",
        Currency::EUR => "€",
        Currency::INR => "₹",
    };
    let rounded = amount.round_dp(2);
    let shown = if rounded == amount.normalize() || amount.abs() >= Decimal::ONE {
        format!("{rounded:.2}")
    } else {
        let places = if amount.abs() < Decimal::new(1, 2) {
            6
        } else {
            4
        };
        let fine = amount.round_dp(places).normalize();
        if fine.scale() < 2 {
            format!("{fine:.2}")
        } else {
            fine.to_string()
        }
    };
    match shown.strip_prefix('-') {
        Some(positive) => format!("-{symbol}{positive}"),
        None => format!("{symbol}{shown}"),
    }
}

/// The badge colour class of a state.
pub fn badge(status: &str) -> &'static str {
    match status {
        "ACTIVE" | "SUCCESS" | "AVAILABLE" | "IN_USE" | "ATTACHED" | "COMPLETED" => "ok",
        "SHUTOFF" | "HIBERNATED" | "DELETED" => "idle",
        "ERROR" | "FAILED" => "bad",
        _ => "busy",
    }
}

/// Whether a state is on its way somewhere (the page keeps refreshing it).
pub fn transitional(status: &str) -> bool {
    badge(status) == "busy"
}

/// `2026-12-04T12:32:56Z` as `2026-12-04 12:32 UTC`.
pub fn when(iso: &str) -> String {
    match (iso.get(0..10), iso.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => iso.to_string(),
    }
}

/// Query string of a link that keeps the list's filters.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            out.append_pair(k, v);
        }
    }
    out.finish()
}

/// The page a list was asked for: a number from 1, the first page otherwise.
pub fn page_number(raw: Option<&str>) -> u32 {
    raw.and_then(|p| p.parse::<u32>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// The link to the page before `page` of a paginated list; empty on the first.
pub fn previous_page(page: u32, link: impl Fn(u32) -> String) -> String {
    if page > 1 {
        link(page - 1)
    } else {
        String::new()
    }
}

/// The link to the page after `page` of `total_pages`; empty on the last.
pub fn next_page(page: u32, total_pages: u32, link: impl Fn(u32) -> String) -> String {
    if page < total_pages {
        link(page + 1)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_shows_cents_and_small_rates() {
        assert_eq!(money(Decimal::new(1050, 2), Currency::USD), "$10.50");
        assert_eq!(money(Decimal::new(-25, 1), Currency::EUR), "-€2.50");
        assert_eq!(money(Decimal::new(125, 4), Currency::USD), "$0.0125");
        assert_eq!(money(Decimal::ZERO, Currency::INR), "₹0.00");
        // A rate to 4 decimals, as the API shows it; under a cent, to the ledger's micro-units.
        let rate: Decimal = "0.699765625".parse().unwrap();
        assert_eq!(money(rate, Currency::USD), "$0.6998");
        let cost: Decimal = "0.0006151".parse().unwrap();
        assert_eq!(money(cost, Currency::USD), "$0.000615");
        let even: Decimal = "0.700001".parse().unwrap();
        assert_eq!(money(even, Currency::USD), "$0.70");
    }

    #[test]
    fn messages_use_the_forms_labels_and_money() {
        assert_eq!(
            plain("port_range_max must not be less than port_range_min"),
            "To port must not be less than From port"
        );
        assert_eq!(
            plain(
                "Insufficient balance: 0 INR available, at least 100 INR needed (the larger of the \
                 minimum balance, 100 INR, and the first hour of this resource, 49.9765625 INR)"
            ),
            "Insufficient balance: ₹0.00 available, at least ₹100.00 needed (the larger of the \
             minimum balance, ₹100.00, and the first hour of this resource, ₹49.98)"
        );
        assert_eq!(
            plain(
                "Insufficient balance: 0 USD available, this call may cost up to 0.000615 USD (its \
                 prompt and max_tokens of reply)"
            ),
            "Insufficient balance: $0.00 available, this call may cost up to $0.000615 (its prompt \
             and the longest reply it asks for)"
        );
        assert_eq!(
            plain("cloud_init must be 16384 bytes or less."),
            "Cloud-init must be 16384 bytes or less."
        );
        assert_eq!(
            plain(
                "image_name is required (or boot from a volume with volume_id and \
                 boot_from_volume: true)"
            ),
            "Choose a boot image, or a volume to boot from"
        );
        // Words that only contain a field's name, and numbers that are not amounts, are kept.
        assert_eq!(plain("my_image_name is 5 GB"), "my_image_name is 5 GB");
        assert_eq!(
            profile_labels(&["address_line", "postal_code", "country"]),
            "Billing address, Postal code, Country"
        );
    }
}
