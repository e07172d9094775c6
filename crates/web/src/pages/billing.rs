//! Billing: what the account spends (this month, per hour, how long the balance lasts), the cost of each
//! day as a chart drawn on the server, the billing records of instances, volumes and snapshots, and the
//! ledger's transactions page by page.

use askama::Template;
use axum::extract::Query;
use axum::response::Response;
use barrack_api::billing::{
    BillingQuery, InstanceBillingRecord, SnapshotBillingRecord, VolumeBillingRecord,
};
use barrack_api::ledger::{TransactionQuery, TransactionType};
use barrack_core::accounts::web_sessions::WebSession;
use barrack_core::billing::series::Outlook;
use serde::Deserialize;

use crate::State;
use crate::chart::{self, Bar};
use crate::error::WebError;
use crate::session::Signed;
use crate::view::{
    Errors, Nav, badge, filtered_list, money, next_page, ok, page_number, previous_page, query,
    when,
};

const DAY_MS: i64 = 86_400_000;
/// The chart's ranges, in days.
const RANGES: [u32; 3] = [7, 30, 90];
const RECORDS_PER_PAGE: u32 = 20;
const TRANSACTIONS_PER_PAGE: u32 = 50;

/// The outlook as the overview and this page show it.
pub struct OutlookView {
    pub burn: String,
    pub lasts: String,
    pub month_cost: String,
    pub month_start: String,
}

impl OutlookView {
    pub fn new(outlook: &Outlook) -> OutlookView {
        OutlookView {
            burn: format!(
                "{} per hour",
                money(outlook.burn_per_hour, outlook.currency)
            ),
            lasts: match outlook.hours_left {
                None => "Nothing is billed now".into(),
                Some(hours) => duration(hours),
            },
            month_cost: money(outlook.month_cost, outlook.currency),
            month_start: outlook.month_start.get(0..10).unwrap_or_default().into(),
        }
    }
}

/// Hours as people read them: "about 3.5 hours", "about 12 days".
fn duration(hours: rust_decimal::Decimal) -> String {
    let days = (hours / rust_decimal::Decimal::from(24)).round_dp(1);
    if hours < rust_decimal::Decimal::from(48) {
        format!("about {} hours at this rate", hours.normalize())
    } else {
        format!("about {} days at this rate", days.normalize())
    }
}

#[derive(Deserialize, Default)]
pub struct BillingParams {
    days: Option<String>,
    records: Option<String>,
    page: Option<String>,
}

pub struct RecordView {
    pub id: String,
    pub name: String,
    pub what: String,
    pub start: String,
    pub end: String,
    pub minutes: u64,
    pub rate: String,
    pub cost: String,
    pub status: String,
    pub badge: &'static str,
}

pub struct DayView {
    pub day: String,
    pub cost: String,
}

#[derive(Template)]
#[template(path = "billing.html")]
struct BillingPage {
    nav: Nav,
    outlook: OutlookView,
    balance: String,
    days: u32,
    ranges: Vec<(u32, bool)>,
    chart: String,
    points: Vec<DayView>,
    range_total: String,
    kinds: Vec<(&'static str, &'static str, bool)>,
    kind: &'static str,
    records: Vec<RecordView>,
    records_total: String,
    page: u32,
    total_pages: u32,
    prev: String,
    next: String,
    errors: Errors,
}

/// Which records: (query value, heading).
const KINDS: [(&str, &str); 3] = [
    ("instances", "Instances"),
    ("volumes", "Volumes and OS disks"),
    ("snapshots", "Snapshots"),
];

pub async fn page(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Query(params): Query<BillingParams>,
) -> Result<Response, WebError> {
    let services = &state.services;
    let caller = &session.caller;
    let mut errors = Errors::default();
    let days = match params.days.as_deref() {
        None | Some("") => 30,
        Some(text) => match text.parse::<u32>() {
            Ok(d) if RANGES.contains(&d) => d,
            _ => {
                errors
                    .fields
                    .insert("days".into(), vec!["Choose 7, 30 or 90 days".into()]);
                30
            }
        },
    };
    let kind = KINDS
        .iter()
        .map(|(k, _)| *k)
        .find(|k| params.records.as_deref() == Some(k))
        .unwrap_or("instances");
    let page = page_number(params.page.as_deref());

    let balance = services.ledger.balance(caller).await?;
    let outlook = services.billing.outlook(caller, balance.balance).await?;
    let now = services.clock().now_ms();
    // Whole days, today last.
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    let from = today - DAY_MS * (i64::from(days) - 1);
    let series = services
        .billing
        .cost_series(caller, from, DAY_MS, days as usize)
        .await?;
    let currency = series.currency;
    let bars: Vec<Bar> = series
        .starts
        .iter()
        .zip(&series.costs)
        .map(|(start, cost)| Bar {
            label: day(*start),
            value: *cost,
            shown: money(*cost, currency),
        })
        .collect();
    let top = series
        .costs
        .iter()
        .copied()
        .fold(rust_decimal::Decimal::ZERO, rust_decimal::Decimal::max);
    let chart = chart::bars(
        "cost",
        &format!("Cost per day, last {days} days"),
        &format!(
            "Bars for each day from {} to {}; {} in total, the most on one day {}.",
            day(from),
            day(today),
            money(series.total(), currency),
            money(top, currency)
        ),
        &bars,
        &money(top, currency),
    );
    let points = bars
        .iter()
        .map(|b| DayView {
            day: b.label.clone(),
            cost: b.shown.clone(),
        })
        .collect();

    let query_of = BillingQuery {
        page: Some(page),
        limit: Some(RECORDS_PER_PAGE),
        ..BillingQuery::default()
    };
    // The three kinds of record share their billing fields; each names and describes what it bills.
    macro_rules! records {
        ($response:expr, $name:ident, $what:expr) => {{
            let r = $response;
            let describe = $what;
            let rows = r
                .records
                .into_iter()
                .map(|v| RecordView {
                    what: describe(&v),
                    id: v.billing_id,
                    name: v.$name,
                    start: when(&v.start_time),
                    end: v.end_time.as_deref().map(when).unwrap_or_default(),
                    minutes: v.total_duration_minutes,
                    rate: money(v.per_minute_rate.0, v.currency),
                    cost: money(v.total_cost.0, v.currency),
                    badge: status_badge(&v.status),
                    status: v.status,
                })
                .collect::<Vec<_>>();
            (rows, r.summary.totalCost.0, (r.page, r.total_pages))
        }};
    }
    let (records, total_cost, pagination) = match kind {
        "volumes" => records!(
            services.billing.volume_records(caller, query_of).await?,
            volume_name,
            |v: &VolumeBillingRecord| format!("{} GB {}", v.size_gb, v.volume_type)
        ),
        "snapshots" => records!(
            services.billing.snapshot_records(caller, query_of).await?,
            snapshot_name,
            |s: &SnapshotBillingRecord| format!("{} GB", s.size_gb)
        ),
        _ => records!(
            services.billing.instance_records(caller, query_of).await?,
            vm_name,
            |i: &InstanceBillingRecord| format!("{} × {}", i.gpu_count, i.gpu_type)
        ),
    };
    let (page, total_pages) = (pagination.0, pagination.1.max(1));
    let days_text = days.to_string();
    let link = |p: u32| {
        query(&[
            ("days", &days_text),
            ("records", kind),
            ("page", &p.to_string()),
        ])
    };
    let page = BillingPage {
        nav: Nav::new(&session, "billing"),
        outlook: OutlookView::new(&outlook),
        balance: money(balance.balance, balance.currency),
        days,
        ranges: RANGES.iter().map(|d| (*d, *d == days)).collect(),
        chart,
        points,
        range_total: money(series.total(), currency),
        kinds: KINDS.iter().map(|(k, h)| (*k, *h, *k == kind)).collect(),
        kind,
        records,
        records_total: money(total_cost, currency),
        page,
        total_pages,
        prev: previous_page(page, link),
        next: next_page(page, total_pages, link),
        errors,
    };
    ok(&page)
}

fn status_badge(status: &str) -> &'static str {
    match status {
        "active" | "running" => "ok",
        _ => badge(&status.to_ascii_uppercase()),
    }
}

/// `2026-12-04` of a time.
fn day(ms: i64) -> String {
    barrack_core::clock::format_ms(ms)
        .get(0..10)
        .unwrap_or_default()
        .to_string()
}

#[derive(Deserialize, Default)]
pub struct TransactionParams {
    #[serde(rename = "type")]
    kind: Option<String>,
    page: Option<String>,
}

pub struct TransactionView {
    pub when: String,
    pub id: String,
    pub kind: &'static str,
    pub description: String,
    pub amount: String,
    pub balance_after: String,
    pub credit: bool,
}

#[derive(Template)]
#[template(path = "transactions.html")]
struct TransactionsPage {
    nav: Nav,
    kinds: Vec<(&'static str, bool)>,
    kind: String,
    transactions: Vec<TransactionView>,
    total: u64,
    page: u32,
    total_pages: u32,
    prev: String,
    next: String,
    errors: Errors,
}

const TRANSACTION_KINDS: [TransactionType; 5] = [
    TransactionType::Deposit,
    TransactionType::Usage,
    TransactionType::Grant,
    TransactionType::Refund,
    TransactionType::Adjustment,
];

/// The transactions page of one kind (any when `kind` is empty); an unknown kind is refused at its field.
async fn transactions_page(
    state: &crate::WebState,
    session: &WebSession,
    kind_text: &str,
    page: u32,
) -> Result<TransactionsPage, WebError> {
    let kind = match kind_text {
        "" => None,
        text => Some(
            TRANSACTION_KINDS
                .iter()
                .copied()
                .find(|k| k.as_str() == text)
                .ok_or_else(|| {
                    barrack_core::Error::field(
                        "type",
                        format!(
                            "Unknown transaction type '{text}'. Valid values: {}",
                            TRANSACTION_KINDS.map(TransactionType::as_str).join(", ")
                        ),
                    )
                })?,
        ),
    };
    let list = state
        .services
        .ledger
        .transactions(
            &session.caller,
            TransactionQuery {
                page: Some(page),
                limit: Some(TRANSACTIONS_PER_PAGE),
                kind,
                ..TransactionQuery::default()
            },
        )
        .await?;
    let p = list.pagination;
    let link = |n: u32| query(&[("type", kind_text), ("page", &n.to_string())]);
    let total_pages = p.total_pages.max(1);
    Ok(TransactionsPage {
        nav: Nav::new(session, "billing"),
        kinds: TRANSACTION_KINDS
            .iter()
            .map(|k| (k.as_str(), Some(*k) == kind))
            .collect(),
        kind: kind_text.to_string(),
        transactions: list
            .transactions
            .iter()
            .map(|t| TransactionView {
                when: when(&t.created_at),
                id: t.id.clone(),
                kind: t.kind.as_str(),
                description: t.description.clone(),
                amount: money(t.amount, t.currency),
                balance_after: money(t.balance_after, t.currency),
                credit: t.amount.is_sign_positive(),
            })
            .collect(),
        total: p.total,
        page: p.page,
        total_pages,
        prev: previous_page(p.page, link),
        next: next_page(p.page, total_pages, link),
        errors: Errors::default(),
    })
}

/// `/transactions`: the ledger, newest first, 50 a page, by kind.
pub async fn transactions(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Query(params): Query<TransactionParams>,
) -> Result<Response, WebError> {
    let kind = params.kind.unwrap_or_default();
    let page = page_number(params.page.as_deref());
    filtered_list(
        |filtered| match filtered {
            true => transactions_page(&state, &session, &kind, page),
            false => transactions_page(&state, &session, "", 1),
        },
        |view| &mut view.errors,
    )
    .await
}
