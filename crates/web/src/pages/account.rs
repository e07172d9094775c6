//! The account: billing profile, balance and transactions, API keys (a new key is shown once).

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::Tier;
use barrack_api::account::ProfileUpdate;
use barrack_api::ledger::TransactionQuery;
use barrack_core::accounts::web_sessions::WebSession;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, Nav, money, ok, render, when};

/// The profile's fields, in the order the form shows them: (field, label, autocomplete).
const PROFILE_FIELDS: [(&str, &str, &str); 7] = [
    ("name", "Full name", "name"),
    ("phone", "Phone", "tel"),
    ("address_line", "Billing address", "street-address"),
    ("city", "City", "address-level2"),
    ("state", "State or region", "address-level1"),
    ("postal_code", "Postal code", "postal-code"),
    (
        "country",
        "Country (two-letter code, such as US, DE or IN)",
        "country",
    ),
];

pub struct FieldView {
    pub name: &'static str,
    pub label: &'static str,
    pub autocomplete: &'static str,
    pub value: String,
    pub error: String,
}

pub struct TransactionView {
    pub when: String,
    pub kind: &'static str,
    pub description: String,
    pub amount: String,
    pub balance_after: String,
}

pub struct KeyView {
    pub id: String,
    pub name: String,
    pub tier: &'static str,
    pub prefix: String,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    email: String,
    profile_complete: bool,
    fields: Vec<FieldView>,
    profile_errors: Errors,
    profile_saved: bool,
    balance: String,
    /// Every currency the account holds (operators' grants may be in another than the profile's).
    balances: Vec<String>,
    minimum: String,
    transactions: Vec<TransactionView>,
    keys: Vec<KeyView>,
    key_errors: Errors,
    key_name: String,
    /// A key just created: its secret, shown in this answer only.
    new_key: Option<(String, String)>,
}

async fn account_page(
    state: &crate::WebState,
    session: &WebSession,
    submitted: Option<&Form>,
) -> Result<AccountPage, WebError> {
    let caller = &session.caller;
    let profile = state.services.accounts.profile(caller);
    let current = |field: &str| -> String {
        match field {
            "name" => profile.name.clone(),
            "phone" => profile.phone.clone().unwrap_or_default(),
            "address_line" => profile.address_line.clone().unwrap_or_default(),
            "city" => profile.city.clone().unwrap_or_default(),
            "state" => profile.state.clone().unwrap_or_default(),
            "postal_code" => profile.postal_code.clone().unwrap_or_default(),
            "country" => profile.country.clone().unwrap_or_default(),
            _ => String::new(),
        }
    };
    let fields = PROFILE_FIELDS
        .iter()
        .map(|(name, label, autocomplete)| FieldView {
            name,
            label,
            autocomplete,
            value: match submitted {
                Some(form) => form.get(name).unwrap_or_default(),
                None => current(name),
            },
            error: String::new(),
        })
        .collect();
    let balance = state.services.ledger.balance(caller).await?;
    let transactions = state
        .services
        .ledger
        .transactions(
            caller,
            TransactionQuery {
                page: Some(1),
                limit: Some(20),
                ..TransactionQuery::default()
            },
        )
        .await?
        .transactions
        .into_iter()
        .map(|t| TransactionView {
            when: when(&t.created_at),
            kind: t.kind.as_str(),
            description: t.description.clone(),
            amount: money(t.amount, t.currency),
            balance_after: money(t.balance_after, t.currency),
        })
        .collect();
    let keys = state
        .services
        .accounts
        .list_api_keys(caller.account_id())
        .await?
        .into_iter()
        .map(|k| KeyView {
            id: k.id,
            name: k.name,
            tier: k.tier.as_str(),
            prefix: k.prefix,
            created: when(&k.created_at),
            last_used: k
                .last_used_at
                .as_deref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
        })
        .collect();
    Ok(AccountPage {
        nav: Nav::new(session, "account"),
        email: profile.email.clone(),
        profile_complete: profile.profile_complete,
        fields,
        profile_errors: Errors::default(),
        profile_saved: false,
        balance: money(balance.balance, balance.currency),
        balances: balance
            .balances
            .iter()
            .map(|b| money(b.balance, b.currency))
            .collect(),
        minimum: money(balance.minimum_balance, balance.currency),
        transactions,
        keys,
        key_errors: Errors::default(),
        key_name: String::new(),
        new_key: None,
    })
}

pub async fn page(
    axum::extract::State(state): State,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let mut page = account_page(&state, &session, None).await?;
    page.profile_saved = raw.as_deref() == Some("saved=profile");
    ok(&page)
}

pub async fn profile(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let value = |f: &str| Some(form.get(f));
    let update = ProfileUpdate {
        name: value("name"),
        phone: value("phone"),
        address_line: value("address_line"),
        city: value("city"),
        state: value("state"),
        postal_code: value("postal_code"),
        country: value("country"),
    };
    match state
        .services
        .accounts
        .update_profile(&session.caller, update, false)
        .await
    {
        Ok(_) => Ok(super::see("/account?saved=profile#profile")),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let errors = Errors::from_error(e)?;
            let mut page = account_page(&state, &session, Some(&form)).await?;
            for field in &mut page.fields {
                field.error = errors.at(field.name);
            }
            page.profile_errors = errors;
            render(status, &page)
        }
    }
}

pub async fn create_api_key(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let name = form.get("name").unwrap_or_default();
    // As the API: a tier the form does not offer is refused, not replaced.
    let Some(tier) = form.get("tier").as_deref().and_then(Tier::parse) else {
        let mut page = account_page(&state, &session, None).await?;
        page.key_errors.fields.insert(
            "tier".into(),
            vec!["Choose the legacy or the advanced tier".into()],
        );
        page.key_name = name;
        return render(StatusCode::BAD_REQUEST, &page);
    };
    match state
        .services
        .accounts
        .create_api_key(session.caller.account_id(), &name, tier)
        .await
    {
        Ok(key) => {
            let mut page = account_page(&state, &session, None).await?;
            page.new_key = Some((key.name, key.key));
            render(StatusCode::CREATED, &page)
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut page = account_page(&state, &session, None).await?;
            page.key_errors = Errors::from_error_at(e, &[("An API key named", "name")])?;
            page.key_name = name;
            render(status, &page)
        }
    }
}

pub async fn revoke_api_key(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    state
        .services
        .accounts
        .revoke_api_key(session.caller.account_id(), &id)
        .await?;
    Ok(super::see("/account#api-keys"))
}
