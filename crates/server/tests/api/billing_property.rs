//! A property of the meter over random histories: deploys, state changes, volumes, price changes, clock
//! jumps of seconds to days and restarts, in step mode. However the history goes, the balance equals the
//! ledger, and the time each component of a resource spent in a billed state at one rate, summed over all
//! its spans however short, is billed for exactly its whole minutes, no more and no less.
//!
//! The history is drawn from a seed (`BARRACK_PROPERTY_SEED` replays one); the model below is written
//! from the documented rules (prices from the configuration, TB = 1024 GB, exact decimals), not from the
//! implementation: it shares neither the product's rate arithmetic nor its rounding.

use std::collections::BTreeMap;

use barrack_api::ledger::{TransactionQuery, TransactionType};
use barrack_api::volumes::CreateVolumeRequest;
use barrack_api::{Currency, Tier};
use barrack_client::InstanceActionKind;
use barrack_core::clock::Clock;
use barrack_core::config::{Config, ConfigDecimal};
use barrack_store::billing::PeriodFilter;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(random_histories_bill_every_second_once);

/// The configured price of one currency, as the configuration spells it.
fn price(table: &barrack_core::config::PriceTable, currency: Currency) -> Decimal {
    table[&currency].0
}

/// An hour of `size_gb` at a per-TB-hour price (TB = 1024 GB), exact.
fn storage_hourly(per_tb_hour: Decimal, size_gb: u32) -> Decimal {
    per_tb_hour * Decimal::from(size_gb) / Decimal::from(1024)
}

const GPU: &str = "H100-SXM5-80GB";
const MINUTE_MS: i64 = 60_000;
const STEPS: usize = 60;

/// xorshift64*: small, seedable, good enough to pick actions.
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

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A stretch of time one component of a resource was in a billed state, at the rate in force when it began.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    resource: String,
    component: &'static str,
    start: i64,
    end: Option<i64>,
    hourly: Decimal,
}

/// The prices in force (they change when the server restarts with another configuration).
#[derive(Clone)]
struct Prices {
    gpu: Decimal,
    nvme: Decimal,
    hibernation: Decimal,
}

impl Prices {
    fn of(config: &Config) -> Prices {
        Prices {
            gpu: price(&config.gpu_model(GPU).unwrap().prices, Currency::USD),
            nvme: price(&config.volume_type("NVMe").unwrap().prices, Currency::USD),
            hibernation: price(&config.billing.hibernation_prices, Currency::USD),
        }
    }
}

struct Instance {
    id: String,
    gpus: u32,
    disk_gb: u32,
}

struct Volume {
    id: String,
    size_gb: u32,
}

/// Per resource, component and hourly rate: (minutes billed, micro-units billed, periods).
type ByRate = BTreeMap<(String, String, Decimal), (i64, i64, i64)>;

#[derive(Default)]
struct Model {
    spans: Vec<Span>,
}

impl Model {
    /// The resource changed state at `now`: what it was billed for ends, what it is billed for now begins.
    fn change(&mut self, resource: &str, now: i64, billed: Vec<(&'static str, Decimal)>) {
        for span in self
            .spans
            .iter_mut()
            .filter(|s| s.resource == resource && s.end.is_none())
        {
            span.end = Some(now);
        }
        for (component, hourly) in billed {
            self.spans.push(Span {
                resource: resource.to_string(),
                component,
                start: now,
                end: None,
                hourly,
            });
        }
    }

    fn instance(&mut self, i: &Instance, status: &str, now: i64, p: &Prices) {
        let billed = match status {
            "ACTIVE" | "SHUTOFF" => vec![
                ("compute", p.gpu * Decimal::from(i.gpus)),
                ("os_disk", storage_hourly(p.nvme, i.disk_gb)),
            ],
            "HIBERNATED" => vec![("hibernation", p.hibernation)],
            _ => vec![],
        };
        self.change(&i.id, now, billed);
    }
}

/// Milliseconds of a span up to `now`.
fn elapsed(span: &Span, now: i64) -> i64 {
    (span.end.unwrap_or(now).min(now) - span.start).max(0)
}

fn seeds() -> Vec<u64> {
    match std::env::var("BARRACK_PROPERTY_SEED") {
        Ok(seed) => vec![seed.parse().expect("a number")],
        Err(_) => vec![0x5eed_0001, 0x5eed_0002],
    }
}

async fn random_histories_bill_every_second_once(db: Db) {
    for seed in seeds() {
        eprintln!("history seed {seed} (replay with BARRACK_PROPERTY_SEED={seed})");
        one_history(db, seed).await;
    }
}

async fn one_history(db: Db, seed: u64) {
    let mut app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "1000000").await;
    create_key_k(&client).await;
    let mut rng = Rng(seed);
    let mut prices = Prices::of(app.services().config());
    let mut model = Model::default();
    let mut instances: Vec<Instance> = Vec::new();
    let mut volumes: Vec<Volume> = Vec::new();
    let mut names = 0;
    let (mut restarts, mut repriced) = (0, 0);

    for step in 0..STEPS {
        let now = app.clock.now_ms();
        match rng.below(10) {
            // Deploy.
            0 | 1 if instances.len() < 4 => {
                names += 1;
                let gpus = *rng.pick(&[1u32, 2]);
                let disk_gb = *rng.pick(&[100u32, 250, 1000]);
                let body = json!({"gpu_model": GPU, "gpu_count": gpus, "region": "FINLAND-1",
                    "instance_name": format!("p{names}"), "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
                    "ssh_key": "k", "os_volume": {"size": disk_gb}});
                let raw = client
                    .raw(Method::POST, "/api/deploy-server/", Some(&body))
                    .await
                    .unwrap();
                assert_eq!(raw.status, 201, "step {step}: {}", raw.text);
                let id = raw.body["data"]["instance_id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                instances.push(Instance { id, gpus, disk_gb });
                app.settle().await;
                let i = instances.last().unwrap();
                let status = client.instance(&i.id).await.unwrap().data.status;
                assert_eq!(status, "ACTIVE", "step {step}");
                model.instance(i, &status, now, &prices);
            }
            // An action the instance allows now.
            2..=4 if !instances.is_empty() => {
                let index = rng.below(instances.len() as u64) as usize;
                let i = &instances[index];
                let allowed = client.instance(&i.id).await.unwrap().data.allowed_actions;
                let action = rng.pick(&allowed).clone();
                let kind = match action.as_str() {
                    "start" => Some(InstanceActionKind::Start),
                    "stop" => Some(InstanceActionKind::Stop),
                    "reboot" => Some(InstanceActionKind::Reboot),
                    "hibernate" => Some(InstanceActionKind::Hibernate),
                    "restore" => Some(InstanceActionKind::Restore),
                    _ => None,
                };
                match kind {
                    Some(kind) => {
                        client.instance_action(&i.id, kind).await.unwrap();
                    }
                    None => {
                        client.delete_instance(&i.id).await.unwrap();
                    }
                }
                app.settle().await;
                // A deleted instance is gone from the API.
                let status = match client.instance(&i.id).await {
                    Ok(found) => found.data.status,
                    Err(e) if e.status() == Some(404) && kind.is_none() => "DELETED".into(),
                    Err(e) => panic!("step {step}: {e}"),
                };
                model.instance(i, &status, now, &prices);
                if status == "DELETED" {
                    instances.remove(index);
                }
            }
            // Volumes: create, grow, delete.
            5 => {
                if volumes.len() < 3 && (volumes.is_empty() || rng.below(2) == 0) {
                    names += 1;
                    let size_gb = 10 + rng.below(2000) as u32;
                    let volume = client
                        .create_volume(&CreateVolumeRequest {
                            name: format!("v{names}"),
                            size: size_gb,
                            region: "FINLAND-1".into(),
                            volume_type: "NVMe".into(),
                            bootable: false,
                            image_name: None,
                            labels: Default::default(),
                        })
                        .await
                        .unwrap()
                        .data;
                    app.settle().await;
                    model.change(
                        &volume.id,
                        now,
                        vec![("storage", storage_hourly(prices.nvme, size_gb))],
                    );
                    volumes.push(Volume {
                        id: volume.id,
                        size_gb,
                    });
                } else {
                    let index = rng.below(volumes.len() as u64) as usize;
                    if rng.below(2) == 0 {
                        let v = &mut volumes[index];
                        v.size_gb += 1 + rng.below(500) as u32;
                        client.resize_volume(&v.id, v.size_gb).await.unwrap();
                        app.settle().await;
                        model.change(
                            &v.id,
                            now,
                            vec![("storage", storage_hourly(prices.nvme, v.size_gb))],
                        );
                    } else {
                        let v = volumes.remove(index);
                        client.delete_volume(&v.id).await.unwrap();
                        app.settle().await;
                        model.change(&v.id, now, vec![]);
                    }
                }
            }
            // Reboots a few seconds apart: periods shorter than a minute, at the same rates.
            9 if !instances.is_empty() => {
                let i = &instances[rng.below(instances.len() as u64) as usize];
                for _ in 0..1 + rng.below(4) {
                    app.clock.advance_ms(1000 + rng.below(59) as i64 * 1000);
                    let allowed = client.instance(&i.id).await.unwrap().data.allowed_actions;
                    if !allowed.iter().any(|a| a == "reboot") {
                        break;
                    }
                    let at = app.clock.now_ms();
                    client
                        .instance_action(&i.id, InstanceActionKind::Reboot)
                        .await
                        .unwrap();
                    app.settle().await;
                    let status = client.instance(&i.id).await.unwrap().data.status;
                    model.instance(i, &status, at, &prices);
                }
            }
            // The clock jumps, by seconds or by days, and the meter may or may not run before the next step.
            6 | 7 => {
                let ms = match rng.below(3) {
                    0 => rng.below(120) as i64 * 1000,
                    1 => rng.below(6 * 60) as i64 * MINUTE_MS + rng.below(60) as i64 * 1000,
                    _ => rng.below(3 * 24 * 60) as i64 * MINUTE_MS,
                };
                app.clock.advance_ms(ms);
                if rng.below(2) == 0 {
                    app.settle().await;
                }
            }
            // A restart, sometimes with new prices: open spans keep the rate they began with.
            8 => {
                restarts += 1;
                let gpu_price = if rng.below(2) == 0 {
                    repriced += 1;
                    Decimal::new(100 + rng.below(400) as i64, 2)
                } else {
                    prices.gpu
                };
                app.restart_with(|config| {
                    for model in config.gpu_models.iter_mut().filter(|m| m.name == GPU) {
                        model.prices.insert(Currency::USD, ConfigDecimal(gpu_price));
                    }
                })
                .await;
                prices = Prices::of(app.services().config());
                assert_eq!(prices.gpu, gpu_price);
                app.settle().await;
            }
            _ => {
                app.settle().await;
            }
        }
    }
    app.clock
        .advance_ms(rng.below(90) as i64 * MINUTE_MS + 59_000);
    app.settle().await;
    let now = app.clock.now_ms();

    // Per resource, component and rate: the whole minutes of all its spans together, each billed once.
    let periods = app
        .services()
        .store()
        .all_periods(&account, &PeriodFilter::default())
        .await
        .unwrap();
    let mut billed = ByRate::new();
    for p in &periods {
        let hourly: Decimal = p.hourly_rate.parse().unwrap();
        let entry = billed
            .entry((p.resource_id.clone(), p.component.clone(), hourly))
            .or_default();
        entry.0 += p.billed_minutes;
        entry.1 += p.billed_micros;
        entry.2 += 1;
    }
    let mut elapsed_ms: BTreeMap<(String, String, Decimal), i64> = BTreeMap::new();
    for s in &model.spans {
        *elapsed_ms
            .entry((s.resource.clone(), s.component.to_string(), s.hourly))
            .or_default() += elapsed(s, now);
    }
    elapsed_ms.retain(|_, ms| *ms >= MINUTE_MS);
    billed.retain(|_, b| b.0 > 0);
    assert_eq!(
        billed.keys().collect::<Vec<_>>(),
        elapsed_ms.keys().collect::<Vec<_>>(),
        "seed {seed}: what was billed"
    );
    let mut minutes = 0;
    let mut short_spans = 0;
    for (key, ms) in &elapsed_ms {
        let (billed_minutes, billed_micros, periods) = billed[key];
        assert_eq!(
            billed_minutes,
            ms / MINUTE_MS,
            "seed {seed}: minutes of {key:?}"
        );
        // A minute costs the hourly rate / 60, rounded half up to a whole micro-unit: exactly.
        let per_minute = (key.2 * Decimal::from(1_000_000) / Decimal::from(60))
            .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        let exact = per_minute * Decimal::from(billed_minutes);
        assert_eq!(
            Decimal::from(billed_micros),
            exact,
            "seed {seed}: {key:?} charged {billed_micros} micro-units for {billed_minutes} minutes over {periods} periods"
        );
        minutes += billed_minutes;
    }
    for s in &model.spans {
        short_spans += usize::from(elapsed(s, now) > 0 && elapsed(s, now) < MINUTE_MS);
    }
    let billed_micros: i64 = billed.values().map(|b| b.1).sum();
    eprintln!(
        "seed {seed}: {} spans ({short_spans} under a minute) over {} resource rates, {minutes} minutes billed, {restarts} restarts ({repriced} with new prices)",
        model.spans.len(),
        elapsed_ms.len()
    );

    // The ledger explains every debit, and the balance is the ledger.
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
        usage += list.transactions.iter().map(|t| t.amount).sum::<Decimal>();
        if page >= list.pagination.total_pages {
            break;
        }
        page += 1;
    }
    assert_eq!(usage, -Decimal::new(billed_micros, 6), "seed {seed}");
    let balance = client.balance().await.unwrap().data.balance;
    assert_eq!(balance, Decimal::from(1_000_000) + usage, "seed {seed}");
    let store = app.services().store();
    assert_eq!(
        store.ledger_sum(&account, "USD").await.unwrap(),
        store
            .balances(&account)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, m)| m)
            .sum::<i64>()
    );
    crate::common::assert_derived_state_consistent(store).await;
    app.stop().await;
}
