//! `barrack catalog`: what can be deployed where, and at what price. Answers without a key.

use std::collections::BTreeSet;

use barrack_api::catalog::{
    CatalogQuery, Prices, PricingRequest, PricingResponse, Quote, ResourceType,
};
use barrack_api::{Currency, Tier};
use clap::{ArgGroup, Subcommand};
use reqwest::Method;

use super::{Ctx, Output, currency_parser, tier_parser};
use crate::error::CliError;
use crate::output::{Table, View, money, or_dash};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List regions
    #[command(after_help = "Examples:\n  \
        barrack catalog regions\n  \
        barrack catalog regions --tier advanced -o json")]
    Regions(Filters),
    /// List GPU models with their specs and hourly prices
    #[command(after_help = "Examples:\n  \
        barrack catalog gpus\n  \
        barrack catalog gpus --region FINLAND-1")]
    Gpus(Filters),
    /// Show free GPUs per region and model, and how many instances of each size fit
    #[command(after_help = "Examples:\n  \
        barrack catalog stock\n  \
        barrack catalog stock --gpu-model H100-SXM5-80GB")]
    Stock(Filters),
    /// List OS images
    #[command(after_help = "Examples:\n  \
        barrack catalog images\n  \
        barrack catalog images --region CANADA-1 -q")]
    Images(Filters),
    /// Show the price list of GPUs, volumes and snapshots
    #[command(after_help = "Examples:\n  \
        barrack catalog pricing\n  \
        barrack catalog pricing --tier advanced --currency EUR")]
    Pricing(PricingArgs),
    /// Price one configuration: hourly, per minute, daily and monthly
    #[command(after_help = "Examples:\n  \
        barrack catalog quote --gpu-model H100-SXM5-80GB --gpu-count 4\n  \
        barrack catalog quote --volume-type NVMe --size 500 --currency EUR\n  \
        barrack catalog quote --snapshot --tier legacy")]
    Quote(QuoteArgs),
}

#[derive(Debug, clap::Args)]
pub struct Filters {
    /// Only this tier
    #[arg(long, value_parser = tier_parser())]
    tier: Option<Tier>,
    /// Only this region
    #[arg(long)]
    region: Option<String>,
    /// Only this GPU model
    #[arg(long)]
    gpu_model: Option<String>,
}

impl Filters {
    fn query(self) -> CatalogQuery {
        CatalogQuery {
            tier: self.tier,
            region: self.region,
            gpu_model: self.gpu_model,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct PricingArgs {
    /// Only this tier's entries
    #[arg(long, value_parser = tier_parser())]
    tier: Option<Tier>,
    /// Only this currency's prices
    #[arg(long, value_parser = currency_parser())]
    currency: Option<Currency>,
}

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("resource").required(true).args(["gpu_model", "volume_type", "snapshot"])))]
pub struct QuoteArgs {
    /// GPU model, with --gpu-count
    #[arg(long, requires = "gpu_count")]
    gpu_model: Option<String>,
    /// GPUs per instance (1, 2, 4 or 8)
    #[arg(long, requires = "gpu_model")]
    gpu_count: Option<u32>,
    /// Volume type, with --size
    #[arg(long, requires = "size")]
    volume_type: Option<String>,
    /// Volume size in GB
    #[arg(long, value_name = "GB", requires = "volume_type")]
    size: Option<u32>,
    /// Price one snapshot
    #[arg(long)]
    snapshot: bool,
    /// Tier to price in (snapshots; checked against the model or volume type)
    #[arg(long, value_parser = tier_parser())]
    tier: Option<Tier>,
    /// Currency of the quote [default: the account's, or USD]
    #[arg(long, value_parser = currency_parser())]
    currency: Option<Currency>,
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::Regions(filters) => {
            let data = ctx.call(client.regions(&filters.query())).await?.data;
            let mut table = Table::new(
                &["NAME", "TIER", "LOCATION", "GPU MODELS", "VOLUME TYPES"],
                "No regions.",
            );
            for r in &data.regions {
                table.row([
                    r.name.clone(),
                    r.tier.to_string(),
                    r.location.clone(),
                    r.gpu_models.join(", "),
                    r.volume_types.join(", "),
                ]);
            }
            let ids = data
                .regions
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>();
            Ok(Output::new(&data, View::Table(table)).ids(ids))
        }
        Command::Gpus(filters) => {
            let data = ctx.call(client.gpu_specs(&filters.query())).await?.data;
            let currencies = currencies(data.gpu_specs.iter().map(|g| &g.prices));
            let mut headers = vec!["MODEL", "TIER", "MEMORY", "VCPUS/GPU", "RAM/GPU", "COUNTS"];
            headers.extend(currencies.iter().map(|c| per_hour_header(*c)));
            headers.push("REGIONS");
            let mut table = Table::new(&headers, "No GPU models.");
            for g in &data.gpu_specs {
                let mut row = vec![
                    g.model.clone(),
                    g.tier.to_string(),
                    format!("{} GB", g.memory_gb),
                    g.vcpus_per_gpu.to_string(),
                    format!("{} GB", g.ram_gb_per_gpu),
                    join(&g.counts),
                ];
                row.extend(prices(&g.prices, &currencies));
                row.push(g.regions.join(", "));
                table.row(row);
            }
            let ids = data
                .gpu_specs
                .iter()
                .map(|g| g.model.clone())
                .collect::<Vec<_>>();
            Ok(Output::new(&data, View::Table(table)).ids(ids))
        }
        Command::Stock(filters) => {
            let data = ctx.call(client.gpu_stocks(&filters.query())).await?.data;
            let mut table = Table::new(
                &[
                    "REGION",
                    "GPU MODEL",
                    "TIER",
                    "TOTAL",
                    "AVAILABLE",
                    "INSTANCES THAT FIT (GPUS×COUNT)",
                ],
                "No GPU stock.",
            );
            for s in &data.stocks {
                let fits = s
                    .configurations
                    .iter()
                    .map(|c| format!("{}×{}", c.gpu_count, c.max_instances))
                    .collect::<Vec<_>>()
                    .join(" ");
                table.row([
                    s.region.clone(),
                    s.gpu_model.clone(),
                    s.tier.to_string(),
                    s.total.to_string(),
                    s.available.to_string(),
                    fits,
                ]);
            }
            Ok(Output::new(&data, View::Table(table)))
        }
        Command::Images(filters) => {
            let data = ctx.call(client.os_images(&filters.query())).await?.data;
            let mut table = Table::new(&["NAME", "REGION", "TIER"], "No OS images.");
            for i in &data.images {
                table.row([i.name.clone(), i.region.clone(), i.tier.to_string()]);
            }
            let ids = data
                .images
                .iter()
                .map(|i| i.name.clone())
                .collect::<Vec<_>>();
            Ok(Output::new(&data, View::Table(table)).ids(ids))
        }
        Command::Pricing(args) => {
            let query = serde_urlencoded::to_string(PricingRequest {
                tier: args.tier,
                currency: args.currency,
                ..Default::default()
            })
            .map_err(|e| CliError::Other(e.to_string()))?;
            let path = match query.as_str() {
                "" => "/api/pricing/".to_string(),
                q => format!("/api/pricing/?{q}"),
            };
            let response: PricingResponse = ctx
                .call(client.request::<_, ()>(Method::GET, &path, None))
                .await?;
            let view = View::Table(price_list(&response));
            Ok(Output::new(&response, view))
        }
        Command::Quote(args) => {
            let resource_type = if args.gpu_model.is_some() {
                ResourceType::Gpus
            } else if args.volume_type.is_some() {
                ResourceType::Volumes
            } else {
                ResourceType::Snapshots
            };
            let request = PricingRequest {
                tier: args.tier,
                currency: args.currency,
                resource_type: Some(resource_type),
                volume_size_gb: args.size,
                volume_type: args.volume_type,
                gpu_model: args.gpu_model,
                gpu_count: args.gpu_count,
                include: None,
            };
            let response = ctx.call(client.pricing(&request)).await?;
            let quote = response
                .pricing_data
                .quote
                .as_ref()
                .ok_or_else(|| CliError::Other("the API answered without a quote".into()))?;
            let view = quote_view(quote);
            Ok(Output::new(&response, view))
        }
    }
}

/// One line of the price list.
struct PriceRow<'a> {
    kind: &'static str,
    tier: Tier,
    item: String,
    prices: &'a Prices,
    unit: &'a str,
    max_gpus: Option<u32>,
}

/// Every entry of the price list, one row each, with a column per currency present.
fn price_list(response: &PricingResponse) -> Table {
    let data = &response.pricing_data;
    let mut rows = Vec::new();
    for (tier, models) in &data.gpus.pricing {
        rows.extend(models.iter().map(|(model, e)| PriceRow {
            kind: "gpu",
            tier: *tier,
            item: model.clone(),
            prices: &e.prices,
            unit: &e.unit,
            max_gpus: e.max_count,
        }));
    }
    for (tier, types) in &data.volumes.pricing {
        rows.extend(types.iter().map(|(name, e)| PriceRow {
            kind: "volume",
            tier: *tier,
            item: name.clone(),
            prices: &e.prices,
            unit: &e.unit,
            max_gpus: None,
        }));
    }
    rows.extend(data.snapshots.pricing.iter().map(|(tier, s)| PriceRow {
        kind: "snapshot",
        tier: *tier,
        item: format!("{} GB", s.fixed_size_gb),
        prices: &s.prices,
        unit: &s.unit,
        max_gpus: None,
    }));

    let currencies = currencies(rows.iter().map(|r| r.prices));
    let mut headers = vec!["KIND", "TIER", "ITEM"];
    headers.extend(currencies.iter().map(|c| c.as_str()));
    headers.extend(["UNIT", "MAX GPUS"]);
    let mut table = Table::new(&headers, "No prices.");
    for r in rows {
        let mut cells = vec![r.kind.to_string(), r.tier.to_string(), r.item];
        cells.extend(prices(r.prices, &currencies));
        cells.extend([r.unit.to_string(), or_dash(r.max_gpus)]);
        table.row(cells);
    }
    table
}

fn quote_view(q: &Quote) -> View {
    let resource = match (&q.gpu_model, q.gpu_count, &q.volume_type, q.size_gb) {
        (Some(model), Some(count), _, _) => format!("{count} × {model}"),
        (_, _, Some(kind), Some(size)) => format!("{size} GB {kind} volume"),
        _ => "snapshot".to_string(),
    };
    let amount = |a: &barrack_api::catalog::Amount| format!("{} {}", a.0, q.currency);
    View::Fields(vec![
        ("Resource", resource),
        ("Tier", q.tier.to_string()),
        ("Hourly", amount(&q.hourly_rate)),
        ("Per minute", amount(&q.per_minute_rate)),
        ("Daily", format!("{} {}", money(q.daily_cost.0), q.currency)),
        (
            "Monthly (730 h)",
            format!("{} {}", money(q.monthly_cost.0), q.currency),
        ),
    ])
}

/// The currencies that appear in any of the price lists, in the API's order.
fn currencies<'a>(lists: impl Iterator<Item = &'a Prices>) -> Vec<Currency> {
    let present: BTreeSet<Currency> = lists.flat_map(|p| p.keys().copied()).collect();
    Currency::ALL
        .into_iter()
        .filter(|c| present.contains(c))
        .collect()
}

fn prices(list: &Prices, currencies: &[Currency]) -> Vec<String> {
    currencies
        .iter()
        .map(|c| or_dash(list.get(c).map(|a| a.0)))
        .collect()
}

fn per_hour_header(currency: Currency) -> &'static str {
    match currency {
        Currency::USD => "USD/H",
        Currency::EUR => "EUR/H",
        Currency::INR => "INR/H",
    }
}

fn join(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
