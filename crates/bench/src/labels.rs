//! `barrack-bench labels`: an account with 10,000 instances, one in ten labelled `team=ml`; a page of 50
//! filtered by that label (`?label=team=ml`) against a page of 50 unfiltered, from 8 clients, in the same
//! run. Target: the filtered list's p50 and p99 within 1.2× of the unfiltered one's. The instances and
//! labels are written directly into the database (see `scale.rs`).

use std::sync::Arc;

use anyhow::Result;
use barrack_store::Store;

use crate::scale::{Loaded, OWN, config, load, ms};
use crate::{Load, measure};

/// One in this many instances carries the label.
const EVERY: usize = 10;

pub async fn run(backend: &str, database_url: Option<&str>) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "barrack-bench-labels-{backend}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let config = config(OWN);
    let Loaded {
        key,
        account_id,
        store_url,
        ..
    } = load(&dir, database_url, &config, OWN).await?;
    let store = Store::connect(&store_url, 2).await?;
    store
        .execute(
            &format!(
                "INSERT INTO labels (resource_type, resource_id, account_id, label_key, label_value, \
                 resource_created_at) SELECT 'instance', id, account_id, 'team', 'ml', created_at FROM instances \
                 WHERE account_id = $1 AND name LIKE 'bulk-%' \
                 AND CAST(substr(name, 6) AS INTEGER) % {EVERY} = 0"
            ),
            &[account_id.as_str().into()],
        )
        .await?;
    store
        .execute_script(if database_url.is_some() {
            "VACUUM ANALYZE"
        } else {
            "ANALYZE"
        })
        .await?;
    store.close().await;

    let mut server = crate::start_logging(&dir, database_url, &config, Some("warn"), false)?;
    server.key = key;
    let load = Load {
        http: reqwest::Client::new(),
        base_url: server.url.clone(),
        key: server.key.clone(),
    };
    // The same pages of both: the filter matches OWN / EVERY instances, 20 pages of 50.
    let pages = OWN / EVERY / 50;
    let unfiltered = Arc::new(
        (1..=pages)
            .map(|p| format!("/api/instances/?limit=50&page={p}"))
            .collect(),
    );
    let filtered = Arc::new(
        (1..=pages)
            .map(|p| format!("/api/instances/?limit=50&page={p}&label=team%3Dml"))
            .collect(),
    );
    let plain = measure(&load, unfiltered, 8).await?;
    let labelled = measure(&load, filtered, 8).await?;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "\n== labels, {backend}: {OWN} instances, 1 in {EVERY} labelled team=ml, pages of 50, 8 clients =="
    );
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "", "p50 ms", "p99 ms", "per s"
    );
    for (name, m) in [
        ("GET /api/instances/", &plain),
        ("GET /api/instances/?label=team=ml", &labelled),
    ] {
        println!(
            "{:<40} {:>10.3} {:>10.3} {:>10.0}",
            name,
            ms(m.p50),
            ms(m.p99),
            m.per_second()
        );
    }
    println!(
        "filtered / unfiltered: p50 {:.2}x, p99 {:.2}x (target ≤ 1.2x)",
        labelled.p50.as_secs_f64() / plain.p50.as_secs_f64(),
        labelled.p99.as_secs_f64() / plain.p99.as_secs_f64()
    );
    Ok(())
}
