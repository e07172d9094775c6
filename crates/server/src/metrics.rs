//! Prometheus metrics at `GET /metrics` (OpenMetrics text). Requests and meter runs are counted as they
//! happen; the job queue, instances by state and address pools are read from the database at each
//! scrape, so every replica reports the same shared figures and nothing drifts.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use barrack_core::Services;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::app::AppState;

/// Request latency buckets, in seconds: from a cached read (0.25 ms) to a slow write (2.5 s).
const LATENCY_BUCKETS: [f64; 13] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Meter run buckets, in seconds: from an idle run to a million open periods.
const METER_BUCKETS: [f64; 10] = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route's template (`/api/instances/{id}/`), never the path itself, so ids do not make series.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionLabels {
    region: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// What this process counts itself.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RequestLabels>,
    meter_runs: Counter,
    meter_failures: Counter,
    meter_seconds: Histogram,
    periods_billed: Counter,
    minutes_billed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "barrack_http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        let request_seconds: HistogramFamily<RequestLabels> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register_with_unit(
            "barrack_http_request_duration",
            "Time to answer HTTP requests, by method, route and status",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let meter_runs = Counter::default();
        registry.register(
            "barrack_meter_runs",
            "Meter runs finished",
            meter_runs.clone(),
        );
        let meter_failures = Counter::default();
        registry.register(
            "barrack_meter_failures",
            "Meter runs that failed (retried at the next interval)",
            meter_failures.clone(),
        );
        let meter_seconds = Histogram::new(METER_BUCKETS);
        registry.register_with_unit(
            "barrack_meter_run_duration",
            "Time a meter run took",
            Unit::Seconds,
            meter_seconds.clone(),
        );
        let periods_billed = Counter::default();
        registry.register(
            "barrack_meter_periods_billed",
            "Billing periods charged by this process's meter runs",
            periods_billed.clone(),
        );
        let minutes_billed = Counter::default();
        registry.register(
            "barrack_meter_minutes_billed",
            "Minutes charged by this process's meter runs",
            minutes_billed.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            meter_runs,
            meter_failures,
            meter_seconds,
            periods_billed,
            minutes_billed,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            method: method.to_string(),
            route: route.to_string(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one meter run: how long it took and what it billed (`None` when it failed).
    pub fn meter_run(&self, elapsed: Duration, billed: Option<(u64, u64)>) {
        match billed {
            Some((periods, minutes)) => {
                self.meter_runs.inc();
                self.meter_seconds.observe(elapsed.as_secs_f64());
                self.periods_billed.inc_by(periods);
                self.minutes_billed.inc_by(minutes);
            }
            None => {
                self.meter_failures.inc();
            }
        }
    }

    /// The exposition: this process's counters, then what the database says now.
    pub async fn render(&self, services: &Services) -> Result<String, barrack_store::StoreError> {
        let shared = shared_state(services).await?;
        let mut text = String::new();
        let written = encode_registry(&mut text, &self.registry)
            .and_then(|()| encode_registry(&mut text, &shared))
            .and_then(|()| encode_eof(&mut text));
        if written.is_err() {
            return Err(barrack_store::StoreError::Unexpected(
                "metrics could not be encoded".into(),
            ));
        }
        Ok(text)
    }
}

/// Gauges of the state all replicas share, read at scrape time.
async fn shared_state(services: &Services) -> Result<Registry, barrack_store::StoreError> {
    let store = services.store();
    let now = services.clock().now_ms();
    let mut registry = Registry::default();

    let depth = Family::<JobLabels, Gauge>::default();
    let oldest = Family::<KindLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    // Per kind, the earliest time a job became due and is still unfinished (none due: no wait).
    let mut due_since: Vec<(String, Option<i64>)> = Vec::new();
    for (kind, status, count, due) in store.job_queue(now).await? {
        depth
            .get_or_create(&JobLabels {
                kind: kind.clone(),
                status,
            })
            .set(count);
        match due_since.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, at)) => *at = (*at).into_iter().chain(due).min(),
            None => due_since.push((kind, due)),
        }
    }
    for (kind, due) in due_since {
        let age = due.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
        oldest.get_or_create(&KindLabels { kind }).set(age);
    }
    registry.register(
        "barrack_jobs",
        "Jobs not finished, by kind and status (pending or running)",
        depth,
    );
    registry.register_with_unit(
        "barrack_job_oldest_age",
        "How long the longest-waiting job of each kind has been due without finishing (0: none due)",
        Unit::Seconds,
        oldest,
    );

    let instances = Family::<StateLabels, Gauge>::default();
    for (state, count) in store.live_instances_by_state().await? {
        instances.get_or_create(&StateLabels { state }).set(count);
    }
    registry.register(
        "barrack_instances",
        "Instances not deleted, by state",
        instances,
    );

    let assigned = Family::<RegionLabels, Gauge>::default();
    let size = Family::<RegionLabels, Gauge>::default();
    let usage = store.public_ip_usage().await?;
    for region in &services.config().regions {
        let labels = RegionLabels {
            region: region.name.clone(),
        };
        let pool = barrack_core::network::Pool::parse(&region.public_ip_pool)
            .map(|p| i64::from(p.len()))
            .unwrap_or(0);
        size.get_or_create(&labels).set(pool);
        let used = usage
            .iter()
            .find(|(r, _)| *r == region.name)
            .map_or(0, |u| u.1);
        assigned.get_or_create(&labels).set(used);
    }
    registry.register(
        "barrack_public_ip_pool_size",
        "Usable addresses of each region's public address pool",
        size,
    );
    registry.register(
        "barrack_public_ips_assigned",
        "Public addresses handed out, by region",
        assigned,
    );

    if let Some((connections, idle)) = store.pool_usage() {
        let open = Gauge::<i64>::default();
        open.set(i64::from(connections));
        registry.register(
            "barrack_db_connections",
            "PostgreSQL connections this process holds open",
            open,
        );
        let idle_gauge = Gauge::<i64>::default();
        idle_gauge.set(idle as i64);
        registry.register(
            "barrack_db_connections_idle",
            "Open PostgreSQL connections not in use",
            idle_gauge,
        );
    }
    Ok(registry)
}

/// `GET /metrics`. When `metrics.bearer_token` is set, scrapers send it as `Authorization: Bearer`.
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = state.services.config().metrics.bearer_token.as_deref() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need the configured bearer token\n",
            )
                .into_response();
        }
    }
    match state.metrics.render(&state.services).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database could not be read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database could not be read\n",
            )
                .into_response()
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Shared by the router and the meter loop.
pub type SharedMetrics = Arc<Metrics>;
