//! Starting and stopping a server: storage, secrets, first-start bootstrap, the router, the listener.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use barrack_core::accounts::{AdminPassword, Bootstrap};
use barrack_core::auth::{Secrets, generate_server_secret};
use barrack_core::billing::MeterPace;
use barrack_core::clock::{Clock, OffsetClock};
use barrack_core::config::{Config, check_server_secret};
use barrack_core::{Context, Services, Store};
use std::time::Duration;
use tokio::net::TcpListener;

use barrack_compute::ComputeDriver;
use barrack_compute::sim::SimDriver;
use barrack_core::ai::config::ModelBackendKind;
use barrack_core::config::DriverKind;
use barrack_core::firewall_worker::FirewallWorker;
use barrack_core::instance_worker::InstanceWorker;
use barrack_core::jobs::{JobRunner, JobSettings};
use barrack_core::volume_worker::VolumeWorker;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;
use tower::Layer;
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;

use crate::http::client_address::TrustedProxies;
use crate::http::middleware;
use crate::http::rate_limit::RateLimiter;
use crate::metrics::{Metrics, SharedMetrics};
pub use crate::private_files::write_private;
use crate::private_files::{private_database, private_dir};

/// What every handler can reach. Extractors clone it for every request, so it is one shared pointer.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub services: Services,
    /// The simulated data centre, when it is the driver (fault injection).
    pub simulator: Option<Arc<SimDriver>>,
    pub rate_limiter: Option<RateLimiter>,
    pub trusted_proxies: TrustedProxies,
    /// Failed log-ins per email and per client address.
    /// What `/metrics` reports of this process.
    pub metrics: SharedMetrics,
    /// The served OpenAPI document, written on its first request rather than at every start (writing it
    /// takes 10 to 20 ms of CPU).
    openapi_json: std::sync::OnceLock<String>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct StartOptions {
    pub config: Config,
    /// Defaults to the simulation clock: real time plus an offset operators can move forward.
    pub clock: Option<Arc<dyn Clock>>,
    /// Run job workers and reconcilers in the background (servers do). Deterministic tests turn this off
    /// and drive the work themselves with [`Running::settle`].
    pub background_work: bool,
}

impl StartOptions {
    pub fn new(config: Config) -> StartOptions {
        StartOptions {
            config,
            clock: None,
            background_work: true,
        }
    }
}

/// A server that is accepting connections.
pub struct Running {
    pub addr: SocketAddr,
    pub services: Services,
    /// What the very first start created (operator account and key), once in an installation's life.
    pub bootstrap: Option<Bootstrap>,
    pub runner: Arc<JobRunner>,
    pub instance_worker: Arc<InstanceWorker>,
    pub volume_worker: Arc<VolumeWorker>,
    pub firewall_worker: Arc<FirewallWorker>,
    /// The simulated data centre, when it is the driver.
    pub simulator: Option<Arc<SimDriver>>,
    /// What `/metrics` reports of this process.
    pub metrics: SharedMetrics,
    shutdown: Option<oneshot::Sender<()>>,
    stop_work: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, finishes requests in flight, closes the database.
    pub async fn shutdown(mut self) {
        self.services.context.closing.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        let _ = self.stop_work.send(true);
        for task in self.background.drain(..) {
            let _ = task.await;
        }
        self.services.store().close().await;
    }

    /// Runs every due job and one reconciliation pass, until nothing is left to do: how deterministic tests
    /// (and the simulator in step mode) move operations forward without sleeping.
    pub async fn settle(&self) -> Result<usize> {
        let mut ran = 0;
        loop {
            let jobs = self.runner.run_until_idle().await?;
            let fixed = self.instance_worker.reconcile().await?
                + self.volume_worker.reconcile().await?
                + self.firewall_worker.reconcile().await?;
            ran += jobs + fixed;
            if jobs == 0 && fixed == 0 {
                // Bill what the clock says has passed; depletion may start hibernations, so settle them.
                let services = &self.services;
                let before = services.store().unfinished_jobs().await?;
                let started = std::time::Instant::now();
                let run = services
                    .billing
                    .meter_and_guard(&services.instances, MeterPace::Full)
                    .await?;
                self.metrics.meter_run(
                    started.elapsed(),
                    Some((run.periods_billed, run.minutes_billed)),
                );
                barrack_core::platform::webhooks::prune_deliveries(&services.context).await?;
                if services.store().unfinished_jobs().await? == before {
                    return Ok(ran);
                }
            }
        }
    }

    /// Serves until the process is told to stop (Ctrl-C or SIGTERM).
    pub async fn serve_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Opens (and migrates) the configured database. A SQLite database and its data directory are private to
/// the server's user (0600 and 0700).
pub async fn open_store(config: &Config) -> Result<Store> {
    open_store_with(config, || {}).await
}

/// [`open_store`], calling `on_empty` before it migrates an empty database.
async fn open_store_with(config: &Config, on_empty: impl FnOnce()) -> Result<Store> {
    let url = config.database_url()?;
    if url.starts_with("sqlite:") {
        private_dir(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
        if let Some(path) = sqlite_file(&url)
            && (path.exists() || url.contains("mode=rwc"))
        {
            private_database(&path)
                .with_context(|| format!("cannot restrict the database {}", path.display()))?;
        }
    }
    let store = Store::connect(&url, config.database_max_connections)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                barrack_store::redact_url(&url)
            )
        })?;
    store
        .migrate_with(on_empty)
        .await
        .context("cannot migrate the database")?;
    Ok(store)
}

/// How to point an operator command at an existing installation.
const POINT_AT_INSTALLATION: &str = "point at the server's data directory with --data-dir or \
     BARRACK_DATA_DIR (or its configuration with --config), or at its database with --database-url or \
     BARRACK_DATABASE_URL";

/// Opens the database of an existing installation for an operator command (`barrackd admin`). Unlike
/// [`open_store`] it creates nothing: no data directory, database file, schema or server secret, so a
/// command run in the wrong place says where it looked instead of starting an empty installation there.
pub async fn open_installation(config: &Config) -> Result<Store> {
    // Its tasks hash keys and passwords with the server's secret: without it they would make keys the
    // servers cannot check.
    if config.configured_secret()?.is_none() && !config.data_dir.join("server.secret").is_file() {
        anyhow::bail!(
            "the server's secret is missing: no server.secret in the data directory {} and none \
             configured; set BARRACK_SECRET (or secret_file in the configuration), or point at the \
             server's data directory with --data-dir or BARRACK_DATA_DIR (or its configuration with \
             --config)",
            config.data_dir.display()
        );
    }
    open_installation_database(config).await
}

/// [`open_installation`] for a command that needs the database alone (`barrackd state export`, which
/// copies rows as they are): no server secret is asked for.
pub async fn open_installation_database(config: &Config) -> Result<Store> {
    let url = config.database_url()?;
    let data_dir = config.data_dir.display();
    let sqlite = url.starts_with("sqlite:");
    if sqlite
        && let Some(path) = sqlite_file(&url)
        && !path.is_file()
    {
        anyhow::bail!(
            "no Barrack database at {} (looked in the data directory {data_dir}); {POINT_AT_INSTALLATION}",
            path.display()
        );
    }
    let redacted = barrack_store::redact_url(&url);
    let unset_up = || {
        anyhow::anyhow!(
            "the database {redacted} holds no Barrack installation (`barrackd serve` or `barrackd \
             migrate` sets one up); {POINT_AT_INSTALLATION}"
        )
    };
    // An empty file is an empty database; opening it would turn it into one (WAL mode).
    if sqlite && sqlite_file(&url).is_some_and(|path| path.metadata().is_ok_and(|m| m.len() == 0)) {
        return Err(unset_up());
    }
    // An existing file only: never `mode=rwc`.
    let url = if sqlite {
        url.replace("mode=rwc", "mode=rw")
    } else {
        url
    };
    let store = Store::connect(&url, config.database_max_connections)
        .await
        .with_context(|| format!("cannot open the database {redacted}"))?;
    if !store.is_set_up().await? {
        store.close().await;
        return Err(unset_up());
    }
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    Ok(store)
}

/// A compute driver, and the simulator again when it is the simulator (for its controls).
pub type Drivers = (Arc<dyn ComputeDriver>, Option<Arc<SimDriver>>);

/// The file a `sqlite:` URL names (none for an in-memory database).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.into())
}

/// The compute driver the configuration names, every call bounded by its configured deadline.
pub fn driver(config: &Config) -> Result<Drivers> {
    let (driver, simulator) = unbounded_driver(config)?;
    let bounded = barrack_compute::deadline::WithDeadlines::new(driver, config.deadlines.clone());
    Ok((Arc::new(bounded), simulator))
}

fn unbounded_driver(config: &Config) -> Result<Drivers> {
    match config.driver {
        DriverKind::Sim => {
            // Without configured hosts the simulator builds them from capacity, the configured one
            // first; the capacity ledger (which operators change) is applied before any placement.
            let sim = Arc::new(SimDriver::new(config.simulator.clone()));
            for c in &config.capacity {
                for (model, n) in &c.gpus {
                    sim.recognize_capacity(&c.region, model, *n);
                }
            }
            Ok((sim.clone(), Some(sim)))
        }
        DriverKind::Libvirt => libvirt_driver(config),
    }
}

#[cfg(feature = "libvirt")]
fn libvirt_driver(config: &Config) -> Result<Drivers> {
    let libvirt = config
        .libvirt
        .clone()
        .context("driver = \"libvirt\" needs a [libvirt] table")?;
    let driver = barrack_compute::libvirt::LibvirtDriver::new(libvirt)
        .map_err(|message| anyhow::anyhow!(message))?;
    Ok((Arc::new(driver), None))
}

#[cfg(not(feature = "libvirt"))]
fn libvirt_driver(_config: &Config) -> Result<Drivers> {
    anyhow::bail!(
        "driver = \"libvirt\" needs barrackd built with the libvirt feature \
         (cargo build -p barrack-server --features libvirt; docs/operating.md)"
    )
}

/// The services over an open store.
pub fn services(
    config: Config,
    store: Store,
    clock: Arc<dyn Clock>,
    driver: Arc<dyn ComputeDriver>,
) -> Result<Services> {
    let secrets = secrets(&config)?;
    let services = Services::new(Context {
        store,
        config,
        clock,
        secrets,
        driver,
        work: Arc::new(Notify::new()),
        closing: tokio::sync::watch::channel(false).0,
        resets_seen: Default::default(),
    });
    let ai = &services.config().ai;
    let timeout = Duration::from_secs(ai.upstream_timeout_seconds);
    for model in ai
        .models
        .iter()
        .filter(|m| m.backend == ModelBackendKind::Openai)
    {
        let backend = crate::ai_upstream::OpenAiBackend::new(model, timeout)
            .with_context(|| format!("AI model '{}'", model.id))?;
        services.ai.register_backend(&model.id, Arc::new(backend));
    }
    Ok(services)
}

/// The configured secret, or the installation's own, generated on first start into the data directory;
/// with the token-signing secret when one is configured.
fn secrets(config: &Config) -> Result<Secrets> {
    let secret = server_secret(config)?;
    let token_secret = config.token_secret()?;
    Ok(Secrets::new(&secret, token_secret.as_deref()))
}

fn server_secret(config: &Config) -> Result<String> {
    if let Some(secret) = config.configured_secret()? {
        return Ok(secret);
    }
    let path = config.data_dir.join("server.secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        let secret = secret.trim().to_string();
        check_server_secret(&path.display().to_string(), &secret).with_context(|| {
            format!(
                "remove {} to have a new one generated (API keys and sessions then stop working)",
                path.display()
            )
        })?;
        return Ok(secret);
    }
    private_dir(&config.data_dir)?;
    let secret = generate_server_secret();
    write_private(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secret)
}

/// Boots a server: database, services, first-start bootstrap, then the listener.
pub async fn start(options: StartOptions) -> Result<Running> {
    crate::webhook_sender::install_crypto_provider();
    let config = options.config;
    let clock = options
        .clock
        .unwrap_or_else(|| Arc::new(OffsetClock::default()));
    let listen = config.listen.clone();
    let api = tokio::task::spawn_blocking(api_routes);
    // On an empty database the operator's password is hashed beside the migrations, not after them.
    let mut admin_password = None;
    let store = open_store_with(&config, || {
        admin_password = Some(tokio::spawn(AdminPassword::generate()));
    })
    .await?;
    let (driver, simulator) = driver(&config)?;
    let services = services(config, store, clock, driver)?;
    services.simulation.catch_up().await?;
    services.catalog.seed_capacity().await?;
    let admin_password = match admin_password {
        Some(hashing) => Some(hashing.await.context("hashing the operator's password")??),
        None => None,
    };
    let bootstrap = services.accounts.bootstrap_admin(admin_password).await?;
    if let Some(b) = &bootstrap {
        let path = services.config().data_dir.join("admin-credentials");
        private_dir(&services.config().data_dir)?;
        let text = format!(
            "email: {}\npassword: {}\napi_key: {}\n",
            b.email, b.password, b.key.key
        );
        write_private(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }

    let jobs = &services.config().jobs;
    let settings = JobSettings {
        lease_ms: i64::from(jobs.lease_seconds) * 1000,
        poll_interval: Duration::from_millis(jobs.poll_interval_ms),
        concurrency: jobs.concurrency as usize,
        ..JobSettings::default()
    };
    let instance_worker = Arc::new(InstanceWorker::new(services.context.clone()));
    if !options.background_work {
        // Deterministic tests drive the work themselves: the driver knows every machine before they do.
        instance_worker.recognize_all().await?;
    }
    let mut runner = JobRunner::new(services.store().clone(), services.clock().clone(), settings);
    runner.wake_on(services.context.work.clone());
    runner.register(barrack_core::instances::JOB_KIND, instance_worker.clone());
    runner.register(
        barrack_core::leases::JOB_KIND,
        Arc::new(barrack_core::leases::LeaseWorker::new(
            services.instances.clone(),
        )),
    );
    let volume_worker = Arc::new(VolumeWorker::new(services.context.clone()));
    runner.register(barrack_core::volumes::JOB_KIND, volume_worker.clone());
    let firewall_worker = Arc::new(FirewallWorker::new(services.context.clone()));
    runner.register(barrack_core::firewalls::JOB_KIND, firewall_worker.clone());
    runner.register(
        barrack_core::firewalls::PROGRAM_JOB_KIND,
        firewall_worker.clone(),
    );
    runner.register(
        barrack_core::compute::deploy::holds::JOB_KIND,
        Arc::new(barrack_core::compute::deploy::holds::HoldExpiry::new(
            services.context.clone(),
        )),
    );
    runner.register(
        barrack_core::snapshots::JOB_KIND,
        Arc::new(barrack_core::snapshot_worker::SnapshotWorker::new(
            services.context.clone(),
        )),
    );
    runner.register(
        barrack_core::platform::webhooks::JOB_KIND,
        Arc::new(barrack_core::platform::webhooks::DeliveryWorker::new(
            services.context.clone(),
            Arc::new(crate::webhook_sender::HttpWebhookSender::new(
                services.config().webhooks.ca_bundle_file.as_deref(),
            )?),
        )),
    );
    let runner = Arc::new(runner);
    let (stop_work, work_stopped) = watch::channel(false);
    let metrics: SharedMetrics = Arc::new(Metrics::new());
    let mut background = vec![tokio::spawn(
        services
            .simulation
            .clone()
            .follow_resets(work_stopped.clone()),
    )];
    if options.background_work {
        // The driver learns of the recorded machines behind the listener (a million take seconds); jobs,
        // which place machines, wait for it so no placement collides with a machine it has not heard of.
        let (recognized, machines_known) = watch::channel(false);
        background.push(tokio::spawn(run_jobs_once_recognized(
            runner.clone(),
            machines_known,
            work_stopped.clone(),
        )));
        let own_thread = services.store().backend() == barrack_store::Backend::Sqlite;
        background.push(spawn_background(
            "barrack-meter",
            own_thread.then_some(ThreadPriority::Normal),
            run_meter(services.clone(), metrics.clone(), work_stopped.clone()),
        ));
        background.push(spawn_background(
            "barrack-reconciler",
            own_thread.then_some(ThreadPriority::Background),
            run_reconciler(
                instance_worker.clone(),
                volume_worker.clone(),
                firewall_worker.clone(),
                recognized,
                work_stopped,
            ),
        ));
    }

    let api = api.await.context("building the API's routes")?;
    let router = router_from(api, services.clone(), simulator.clone(), metrics.clone());
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    // Streamed answers (server-sent events) are many small writes: without TCP_NODELAY each waits for the
    // peer's delayed acknowledgement (40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let (tx, rx) = oneshot::channel::<()>();
    let app = MapRequestLayer::new(middleware::normalize_path).layer(router);
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                SocketAddr,
            >(app),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await
    });
    tracing::info!(%addr, backend = services.store().backend().name(), "Barrack API listening");
    // The pool's other connections open once the server answers: on a schema just created each one
    // rebuilds PostgreSQL's catalogue caches, work the start should not wait behind.
    services.store().warm_up();
    Ok(Running {
        addr,
        services,
        bootstrap,
        runner,
        instance_worker,
        volume_worker,
        firewall_worker,
        simulator,
        metrics,
        shutdown: Some(tx),
        stop_work,
        task,
        background,
    })
}

/// The whole HTTP application.
pub fn router(services: Services, simulator: Option<Arc<SimDriver>>) -> Router {
    router_with(services, simulator, Arc::new(Metrics::new()))
}

/// The whole HTTP application, counting into `metrics`.
pub fn router_with(
    services: Services,
    simulator: Option<Arc<SimDriver>>,
    metrics: SharedMetrics,
) -> Router {
    router_from(api_routes(), services, simulator, metrics)
}

/// The API's routes, before their state. Building them builds the OpenAPI document's paths and schemas
/// too (12-16 ms on a 2-core machine), so a starting server builds them on a thread of their own while
/// it migrates its database.
fn api_routes() -> Router<AppState> {
    crate::routes::api_router().split_for_parts().0
}

/// [`router_with`] around the API's routes built already.
fn router_from(
    api: Router<AppState>,
    services: Services,
    simulator: Option<Arc<SimDriver>>,
    metrics: SharedMetrics,
) -> Router {
    let config = services.config();
    let web_simulator = simulator.clone();
    let state = AppState(Arc::new(Shared {
        rate_limiter: RateLimiter::new(
            config.rate_limit.requests,
            config.rate_limit.window_seconds,
            services.context.resets_seen.clone(),
        ),
        trusted_proxies: TrustedProxies::new(&config.rate_limit.trusted_proxies),
        metrics,
        openapi_json: std::sync::OnceLock::new(),
        services: services.clone(),
        simulator,
    }));
    let body_limit = config.body_limit_bytes;
    let dashboard = barrack_web::router_with_simulator(services.clone(), web_simulator)
        .layer(CatchPanicLayer::new())
        .layer(from_fn_with_state(
            state.clone(),
            middleware::client_address,
        ))
        .layer(from_fn_with_state(
            state.clone(),
            middleware::request_context,
        ));
    api.route("/api/openapi.json", get(openapi_json))
        .route("/metrics", get(crate::metrics::scrape))
        .merge(crate::routes::openai::router())
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(from_fn_with_state(
                    state.clone(),
                    middleware::request_context,
                ))
                .layer(from_fn(middleware::json_errors))
                .layer(CatchPanicLayer::custom(middleware::panic_response))
                .layer(from_fn_with_state(state.clone(), middleware::rate_limit))
                .layer(from_fn_with_state(
                    state.clone(),
                    crate::http::idempotency::idempotency,
                ))
                .layer(DefaultBodyLimit::max(body_limit))
                .layer(axum::Extension(crate::http::error::BodyLimit(body_limit))),
        )
        .with_state(state)
        .merge(dashboard)
}

async fn openapi_json(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        state
            .openapi_json
            .get_or_init(|| crate::openapi::document_json_for(state.services.config()))
            .clone(),
    )
}

/// How a background thread shares the cores with the threads that answer requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ThreadPriority {
    /// As they do: work that holds SQLite's writer (the meter), which requests wait for, must not be
    /// made to wait for them in turn.
    Normal,
    /// Behind them (10 steps of nice lower): work that only reads while it sweeps (the reconciler,
    /// whose rare writes are single rows), so that a sweep over a million instances takes the cores
    /// when requests leave them.
    Background,
}

/// Runs background work. On SQLite (`own_thread` given) it gets a thread and a runtime of its own, at
/// that priority: SQLite's statements run on the calling thread, and a meter walking a million periods
/// must not hold the threads that answer requests. PostgreSQL's work is asynchronous, and its pool's
/// connections belong to the runtime that opened them, so there it shares the server's runtime.
fn spawn_background(
    name: &str,
    own_thread: Option<ThreadPriority>,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let Some(priority) = own_thread else {
        return tokio::spawn(work);
    };
    let (done, finished) = oneshot::channel::<()>();
    let started = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if priority == ThreadPriority::Background {
                lower_this_thread_priority();
            }
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(work),
                Err(e) => tracing::error!(error = %e, "cannot start a runtime for background work"),
            }
            let _ = done.send(());
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start a thread for background work");
    }
    tokio::spawn(async move {
        let _ = finished.await;
    })
}

/// Bills closed minutes and guards balances at start and then every `billing.meter_interval_seconds` of
/// real time, or [`METER_REST`] times as long as the last run worked when that is longer (each run catches
/// up with the clock, however far it moved); then prunes the webhook delivery log by the same clock.
async fn run_meter(services: Services, metrics: SharedMetrics, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(services.config().billing.meter_interval_seconds);
    loop {
        let started = std::time::Instant::now();
        let run = async {
            services.simulation.catch_up().await?;
            services
                .billing
                .meter_and_guard(&services.instances, MeterPace::Background)
                .await
        };
        // What the run worked, its rests between chunks left out.
        let worked = match run.await {
            Ok(run) => {
                metrics.meter_run(
                    started.elapsed(),
                    Some((run.periods_billed, run.minutes_billed)),
                );
                started.elapsed().saturating_sub(run.rested)
            }
            Err(e) => {
                metrics.meter_run(started.elapsed(), None);
                tracing::warn!(error = %e, "metering failed");
                started.elapsed()
            }
        };
        if let Err(e) = barrack_core::platform::webhooks::prune_deliveries(&services.context).await
        {
            tracing::warn!(error = %e, "pruning the webhook delivery log failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(every.max(worked * METER_REST)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Lowers the calling thread's priority by [`BACKGROUND_NICE`] steps of nice; the rest of the process
/// keeps its own. On Linux a nice value belongs to a thread, and `nice` changes the caller's; raising it
/// needs no privilege, so it cannot be refused. Elsewhere the thread keeps the process's priority.
fn lower_this_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: `nice` takes an integer and touches no memory of ours.
    unsafe {
        libc::nice(BACKGROUND_NICE);
    }
}

/// How much lower background threads run ([`ThreadPriority::Background`]): at nice 10 above a
/// request's thread, about a tenth of its share of a core when both want one.
#[cfg(target_os = "linux")]
const BACKGROUND_NICE: libc::c_int = 10;

/// How many times as long as its last run the meter rests at least. Each run walks every open period,
/// whether a minute of it closed or not: with a million of them a run takes seconds, and back-to-back
/// runs every few seconds would keep a core of the database busy charging the same minutes sooner. Resting
/// four times as long bounds the meter to a fifth of the time; charges come later, never different.
const METER_REST: u32 = 4;

/// Runs jobs once the driver knows every recorded machine (`machines_known`), until stopped.
async fn run_jobs_once_recognized(
    runner: Arc<JobRunner>,
    mut machines_known: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        known = machines_known.wait_for(|known| *known) => {
            if known.is_err() {
                return;
            }
        }
        _ = stop.wait_for(|stop| *stop) => return,
    }
    let _ = runner.spawn(stop).await;
}

/// Tells the driver about every recorded machine (then says so through `recognized`), and from then on
/// compares driver and database every few seconds.
async fn run_reconciler(
    worker: Arc<InstanceWorker>,
    volumes: Arc<VolumeWorker>,
    firewalls: Arc<FirewallWorker>,
    recognized: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let started = std::time::Instant::now();
    loop {
        tokio::select! {
            result = worker.recognize_all() => match result {
                Ok(()) => break,
                Err(e) => tracing::warn!(error = %e, "could not tell the driver the recorded machines; retrying"),
            },
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "the driver knows every recorded machine; jobs run"
    );
    recognized.send_replace(true);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = worker.reconcile().await {
            tracing::warn!(error = %e, "reconciliation failed");
        }
        if let Err(e) = volumes.reconcile().await {
            tracing::warn!(error = %e, "volume reconciliation failed");
        }
        if let Err(e) = firewalls.reconcile().await {
            tracing::warn!(error = %e, "firewall reconciliation failed");
        }
    }
}

const RECONCILE_EVERY: Duration = Duration::from_secs(5);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{BACKGROUND_NICE, ThreadPriority, spawn_background};

    /// The calling thread's nice value, as the kernel reports it.
    fn nice_of_this_thread() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("the thread's stat");
        // After the name in parentheses: state, then the fields 4 to 52; nice is field 19.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("a name") + 2..]
            .split(' ')
            .collect();
        fields[16].parse().expect("a nice value")
    }

    async fn nice_in(priority: ThreadPriority) -> i64 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn_background("priority-test", Some(priority), async move {
            let _ = tx.send(nice_of_this_thread());
        })
        .await
        .expect("the thread ran");
        rx.await.expect("the thread reported")
    }

    #[tokio::test]
    async fn a_background_thread_runs_lower_and_leaves_the_others_as_they_were() {
        let ours = nice_of_this_thread();
        assert_eq!(nice_in(ThreadPriority::Normal).await, ours);
        assert_eq!(
            nice_in(ThreadPriority::Background).await,
            (ours + i64::from(BACKGROUND_NICE)).min(19)
        );
        // Only that thread: the one asking, and threads started after, keep the process's value.
        assert_eq!(nice_of_this_thread(), ours);
        assert_eq!(nice_in(ThreadPriority::Normal).await, ours);
    }
}
