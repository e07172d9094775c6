//! An account's currency follows its country until money is involved in it; then it is fixed, and a
//! country change that would switch it is refused with the reason.

use barrack_api::account::{ProfileUpdate, UserProfile};
use barrack_api::{Currency, Tier};
use barrack_client::{Client, RawResponse};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(
    a_country_change_that_would_strand_credits_is_refused,
    the_402_names_the_larger_of_the_minimum_and_the_first_hour,
);

/// The profile with its country set to `country`, as the client's account now has it.
async fn set_country(client: &Client, country: &str) -> UserProfile {
    let change = ProfileUpdate {
        country: Some(Some(country.into())),
        ..Default::default()
    };
    client.update_profile(&change).await.unwrap().data
}

/// `PATCH /api/account/profile/` with `body`: the raw answer.
async fn patch_profile(client: &Client, body: serde_json::Value) -> RawResponse {
    client
        .raw(Method::PATCH, "/api/account/profile/", Some(&body))
        .await
        .unwrap()
}

async fn a_country_change_that_would_strand_credits_is_refused(db: Db) {
    let app = TestApp::start(db).await;

    // Without money the currency simply follows the country.
    let (fresh, _) = app.user(Tier::Advanced).await;
    for (country, currency) in [
        ("US", Currency::USD),
        ("FR", Currency::EUR),
        ("IN", Currency::INR),
    ] {
        let profile = set_country(&fresh, country).await;
        assert_eq!(profile.currency, currency, "{country}");
    }

    let (client, _) = app.funded_user(Tier::Advanced, "US", "25").await;
    let before = client.profile().await.unwrap().data;
    let refused = patch_profile(&client, json!({"country": "FR"})).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let why = refused.body["errors"]["country"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains("EUR") && why.contains("fixed to USD") && why.contains("strand"),
        "{}",
        refused.body
    );
    assert_eq!(
        client.profile().await.unwrap().data,
        before,
        "nothing changed"
    );
    let balance = client.balance().await.unwrap().data;
    assert_eq!(
        (balance.currency, balance.balance),
        (Currency::USD, Decimal::from(25))
    );

    // Clearing the country would switch to the default currency: refused the same way when it differs.
    let (indian, _) = app.funded_user(Tier::Advanced, "IN", "1000").await;
    let cleared = patch_profile(&indian, json!({"country": null})).await;
    assert_eq!(cleared.status, 400, "{}", cleared.text);
    assert!(cleared.body["errors"].get("country").is_some());

    // An operator's grant in the currency of the country the owner is about to enter does not fix the
    // account's present one: the profile then moves to it, and the money is spendable.
    let (newcomer, account) = app.user(Tier::Advanced).await;
    app.grant(&account, "5000", Currency::INR).await;
    let indian_now = set_country(&newcomer, "IN").await;
    assert_eq!(indian_now.currency, Currency::INR);
    let balance = newcomer.balance().await.unwrap().data;
    assert_eq!(
        (balance.currency, balance.balance),
        (Currency::INR, Decimal::from(5000))
    );
    // Money in the present currency still holds it, whatever else the account holds.
    app.grant(&account, "10", Currency::EUR).await;
    let held = patch_profile(&newcomer, json!({"country": "FR"})).await;
    assert_eq!(held.status, 400, "{}", held.text);

    // A country billed in the same currency is fine.
    let canadian = set_country(&client, "CA").await;
    assert_eq!(
        (canadian.country.as_deref(), canadian.currency),
        (Some("CA"), Currency::USD)
    );
    app.stop().await;
}

async fn the_402_names_the_larger_of_the_minimum_and_the_first_hour(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "0.5").await;
    create_key_k(&client).await;
    let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": "poor", "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        "ssh_key": "k", "os_volume": {"size": 100}});
    let raw = client
        .raw(Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 402, "{}", raw.text);
    assert!(raw.text.contains("the larger of"), "{}", raw.text);
    // Amounts to the cent (what is needed rounded up), the hourly price as prices are shown.
    let message = raw.body["message"].as_str().unwrap();
    let figures: Vec<&str> = message
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
        .map(|w| w.trim_end_matches('.'))
        .collect();
    assert!(!figures.is_empty(), "{message}");
    let needed = message
        .split("at least ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        needed.split('.').nth(1).map_or(0, str::len) <= 2,
        "{message}"
    );
    for figure in &figures {
        let places = figure.split('.').nth(1).map_or(0, str::len);
        assert!(places <= 4, "{figure} in {message}");
    }
    app.stop().await;
}
