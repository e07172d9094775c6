//! Depletion is per currency: running out of one currency hibernates only what is billed in it.

use barrack_api::{Currency, Tier};
use barrack_client::Client;
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(running_out_of_dollars_leaves_instances_billed_in_euros_running);

async fn deploy(client: &Client, name: &str) -> String {
    let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": name, "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        "ssh_key": "k", "os_volume": {"size": 100}});
    let raw = client
        .raw(Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status.as_u16(), 201, "{}", raw.text);
    raw.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn running_out_of_dollars_leaves_instances_billed_in_euros_running(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "3").await;
    create_key_k(&client).await;
    let dollars = deploy(&client, "in-dollars").await;
    app.settle().await;
    // The account moved to Germany (by an operator: the API keeps a currency in use): what it deploys
    // from now on is billed in euros.
    app.set_country_in_database(&account, "DE").await;
    app.grant(&account, "1000", Currency::EUR).await;
    let euros = deploy(&client, "in-euros").await;
    app.settle().await;

    // USD 2.52 an hour on 3 USD: the dollars run out within two hours.
    app.admin.admin_advance_clock(120).await.unwrap();
    app.settle().await;
    assert_eq!(
        client.instance(&dollars).await.unwrap().data.status,
        "HIBERNATED"
    );
    assert_eq!(
        client.instance(&euros).await.unwrap().data.status,
        "ACTIVE",
        "billed in euros, which the account still has"
    );
    app.stop().await;
}
