//! `GET /api/billing/?from&to` over split ranges: a random history of instances (stop and start, reboots a
//! few seconds apart, hibernation and restore) and volumes (create, grow, delete), in several currencies,
//! cut at random moments and at whole hours. However it is cut, the ranges add up exactly to the range
//! that spans them, kind by kind, in minutes and cost, and that whole is what the ledger charged.

use barrack_api::Tier;
use barrack_api::billing::{AggregatedBilling, BillingQuery};
use barrack_api::ledger::{TransactionQuery, TransactionType};
use barrack_api::volumes::CreateVolumeRequest;
use barrack_client::{Client, InstanceActionKind};
use barrack_core::clock::{Clock, format_ms};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(
    split_ranges_add_up_to_the_whole_and_the_whole_to_the_ledger,
    a_minute_across_a_whole_hour_counts_in_one_hour,
);

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// xorshift64*: small and seedable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// RFC 3339 with milliseconds, so that a range can end anywhere inside a minute.
fn iso_ms(ms: i64) -> String {
    let seconds = format_ms(ms);
    format!(
        "{}.{:03}Z",
        &seconds[..seconds.len() - 1],
        ms.rem_euclid(1000)
    )
}

async fn billing(client: &Client, from: i64, to: i64) -> AggregatedBilling {
    client
        .billing(&BillingQuery {
            from: Some(iso_ms(from)),
            to: Some(iso_ms(to)),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
}

/// What every usage entry of the ledger charged, as a positive amount.
async fn charged(client: &Client) -> Decimal {
    let mut usage = Decimal::ZERO;
    let mut page = 1;
    loop {
        let list = client
            .transactions(&TransactionQuery {
                kind: Some(TransactionType::Usage),
                page: Some(page),
                limit: Some(100),
                ..Default::default()
            })
            .await
            .unwrap()
            .data;
        usage -= list.transactions.iter().map(|t| t.amount).sum::<Decimal>();
        if page >= list.pagination.total_pages {
            break;
        }
        page += 1;
    }
    usage
}

/// The ranges between consecutive cuts, added up kind by kind.
async fn sum_of_parts(client: &Client, cuts: &[i64]) -> [(u64, Decimal); 4] {
    let mut sum = [(0u64, Decimal::ZERO); 4];
    for pair in cuts.windows(2) {
        let part = billing(client, pair[0], pair[1]).await;
        for (i, line) in [&part.instances, &part.volumes, &part.snapshots]
            .into_iter()
            .enumerate()
        {
            sum[i].0 += line.minutes;
            sum[i].1 += line.cost.0;
        }
        sum[3].1 += part.total_cost.0;
    }
    sum
}

fn lines(whole: &AggregatedBilling) -> [(u64, Decimal); 4] {
    [
        (whole.instances.minutes, whole.instances.cost.0),
        (whole.volumes.minutes, whole.volumes.cost.0),
        (whole.snapshots.minutes, whole.snapshots.cost.0),
        (0, whole.total_cost.0),
    ]
}

async fn deploy(client: &Client, name: &str) -> String {
    let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": name, "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        "ssh_key": "k", "os_volume": {"size": 100}});
    let raw = client
        .raw(Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    raw.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn split_ranges_add_up_to_the_whole_and_the_whole_to_the_ledger(db: Db) {
    for (seed, country) in [
        (0x5eed_0101u64, "US"),
        (0x5eed_0102, "DE"),
        (0x5eed_0103, "IN"),
    ] {
        one_history(db, seed, country).await;
    }
}

async fn one_history(db: Db, seed: u64, country: &str) {
    let app = TestApp::start(db).await;
    let granted = Decimal::from(1_000_000);
    let (client, account) = app
        .funded_user(Tier::Advanced, country, &granted.to_string())
        .await;
    create_key_k(&client).await;
    let mut rng = Rng(seed);
    // Off the minute grid, as real starts are.
    app.clock.advance_ms(17_345);
    let begin = app.clock.now_ms();
    let mut instances = [deploy(&client, "r1").await, deploy(&client, "r2").await];
    let mut volumes: Vec<(String, u32)> = Vec::new();
    app.settle().await;

    for step in 0..30 {
        match rng.below(6) {
            // An action the instance allows now (stop, start, reboot, hibernate, restore).
            0 | 1 => {
                let id = &instances[rng.below(instances.len() as u64) as usize];
                let allowed = client.instance(id).await.unwrap().data.allowed_actions;
                let kinds: Vec<InstanceActionKind> = allowed
                    .iter()
                    .filter_map(|a| match a.as_str() {
                        "start" => Some(InstanceActionKind::Start),
                        "stop" => Some(InstanceActionKind::Stop),
                        "reboot" => Some(InstanceActionKind::Reboot),
                        "hibernate" => Some(InstanceActionKind::Hibernate),
                        "restore" => Some(InstanceActionKind::Restore),
                        _ => None,
                    })
                    .collect();
                if !kinds.is_empty() {
                    let kind = kinds[rng.below(kinds.len() as u64) as usize];
                    client.instance_action(id, kind).await.unwrap();
                }
            }
            // Reboots seconds apart: periods under a minute, their remainders carried.
            2 => {
                let id = &instances[rng.below(instances.len() as u64) as usize];
                for _ in 0..1 + rng.below(3) {
                    app.clock.advance_ms(1_000 + rng.below(58_000) as i64);
                    let allowed = client.instance(id).await.unwrap().data.allowed_actions;
                    if !allowed.iter().any(|a| a == "reboot") {
                        break;
                    }
                    client
                        .instance_action(id, InstanceActionKind::Reboot)
                        .await
                        .unwrap();
                    app.settle().await;
                }
            }
            // Volumes: create, grow or delete.
            3 => {
                if volumes.len() < 2 && (volumes.is_empty() || rng.below(2) == 0) {
                    let size = 10 + rng.below(2000) as u32;
                    let volume = client
                        .create_volume(&CreateVolumeRequest {
                            name: format!("v{step}"),
                            size,
                            region: "FINLAND-1".into(),
                            volume_type: "NVMe".into(),
                            bootable: false,
                            image_name: None,
                            labels: Default::default(),
                        })
                        .await
                        .unwrap()
                        .data;
                    volumes.push((volume.id, size));
                } else {
                    let index = rng.below(volumes.len() as u64) as usize;
                    if rng.below(2) == 0 {
                        let (id, size) = &mut volumes[index];
                        *size += 1 + rng.below(500) as u32;
                        client.resize_volume(id, *size).await.unwrap();
                    } else {
                        let (id, _) = volumes.remove(index);
                        client.delete_volume(&id).await.unwrap();
                    }
                }
            }
            // A deleted instance, replaced by a new one.
            4 if rng.below(4) == 0 => {
                let index = rng.below(instances.len() as u64) as usize;
                client.delete_instance(&instances[index]).await.unwrap();
                instances[index] = deploy(&client, &format!("r{}", step + 3)).await;
            }
            // Time passes: seconds to hours, off the minute grid.
            _ => {
                app.clock
                    .advance_ms(rng.below(4 * HOUR_MS as u64) as i64 + 1);
            }
        }
        app.settle().await;
        app.clock.advance_ms(rng.below(3 * MINUTE_MS as u64) as i64);
    }
    app.clock.advance_ms(rng.below(HOUR_MS as u64) as i64);
    app.settle().await;
    let end = app.clock.now_ms();

    let whole = billing(&client, begin - HOUR_MS, end).await;
    let ledger = charged(&client).await;
    assert!(ledger > Decimal::ZERO, "{country}: something was charged");
    assert_eq!(
        whole.total_cost.0, ledger,
        "{country} seed {seed}: the whole range is what the ledger charged"
    );
    assert_eq!(
        client.balance().await.unwrap().data.balance,
        granted - ledger,
        "{country} seed {seed}"
    );
    assert_eq!(
        whole.instances.cost.0 + whole.volumes.cost.0 + whole.snapshots.cost.0,
        whole.total_cost.0
    );
    let store = app.services().store();
    for (currency, micros) in store.balances(&account).await.unwrap() {
        assert_eq!(store.ledger_sum(&account, &currency).await.unwrap(), micros);
    }

    // Cut at every whole hour, then at random moments (milliseconds, minute ends and period ends
    // included by chance), in several ways.
    let mut hours: Vec<i64> = vec![begin - HOUR_MS];
    hours.extend((begin / HOUR_MS + 1..=end / HOUR_MS).map(|h| h * HOUR_MS));
    hours.push(end);
    assert_eq!(
        sum_of_parts(&client, &hours).await,
        lines(&whole),
        "{country} seed {seed}: whole hours"
    );
    for round in 0..4 {
        let mut cuts: Vec<i64> = (0..1 + rng.below(8))
            .map(|_| begin + rng.below((end - begin) as u64) as i64)
            .collect();
        if round == 0 {
            // On a minute's end of the first period and just either side of it.
            let minute_end = begin + 3 * MINUTE_MS;
            cuts.extend([minute_end - 1, minute_end, minute_end + 1]);
        }
        cuts.push(begin - HOUR_MS);
        cuts.push(end);
        cuts.sort();
        cuts.dedup();
        assert_eq!(
            sum_of_parts(&client, &cuts).await,
            lines(&whole),
            "{country} seed {seed}: cut at {:?}",
            cuts.iter().map(|c| iso_ms(*c)).collect::<Vec<_>>()
        );
    }
    app.stop().await;
}

/// The reported case: an instance from hh:25:38 for two hours, split at the whole hours. The minute that
/// runs from 09:59:38 to 10:00:38 is in the second hour, where it ends, and the hours add up.
async fn a_minute_across_a_whole_hour_counts_in_one_hour(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let now = app.clock.now_ms();
    let hour = (now / HOUR_MS + 1) * HOUR_MS;
    app.clock.advance_ms(hour + 25 * MINUTE_MS + 38_000 - now);
    let id = deploy(&client, "split").await;
    app.settle().await;
    app.clock.advance_ms(120 * MINUTE_MS + 6_000);
    client.delete_instance(&id).await.unwrap();
    app.settle().await;

    let whole = billing(&client, hour, hour + 3 * HOUR_MS).await;
    assert_eq!(whole.instances.minutes, 120);
    assert_eq!(whole.total_cost.0, charged(&client).await);
    let first = billing(&client, hour, hour + HOUR_MS).await;
    let rest = billing(&client, hour + HOUR_MS, hour + 3 * HOUR_MS).await;
    // The minutes that end from 09:26:38 to 09:59:38 are the first hour's; the next ends at 10:00:38.
    assert_eq!(first.instances.minutes, 34);
    assert_eq!(rest.instances.minutes, 86);
    assert_eq!(
        first.total_cost.0 + rest.total_cost.0,
        whole.total_cost.0,
        "{first:?} + {rest:?}"
    );
    app.stop().await;
}
