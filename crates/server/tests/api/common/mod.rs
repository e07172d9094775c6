//! The test harness: boots the real server on 127.0.0.1:0 against a fresh SQLite file or a fresh
//! PostgreSQL database, with a clock the test controls, and hands back a client holding an operator key.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use barrack_api::account::{AdminCreateUser, GrantCredits, ProfileUpdate};
use barrack_api::firewalls::CreateFirewallRequest;
use barrack_api::instances::{DeployRequest, SecurityRuleRequest};
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_api::{Currency, Tier};
use barrack_client::Client;
use barrack_core::clock::{Clock, ManualClock};
use barrack_core::config::Config;
use barrack_server::{Running, StartOptions};
use barrack_store::sql::Columns;

#[cfg(feature = "libvirt")]
pub mod libvirt;
pub mod process;
pub mod webdriver;
use rust_decimal::Decimal;

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// `BARRACK_TEST_POSTGRES_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`: the PostgreSQL variants run
/// when it is set (CI always sets it).
pub fn postgres_url() -> Option<String> {
    std::env::var("BARRACK_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Whether the PostgreSQL variant `test` can run: recorded as run, or as skipped with the reason.
pub fn postgres_available(test: &str) -> bool {
    if postgres_url().is_none() {
        skipped("postgres", test, "BARRACK_TEST_POSTGRES_URL is not set");
        return false;
    }
    ran("postgres", test);
    true
}

/// Records that `test` of an optional suite (postgres, browser, python) ran, for the summary of
/// `scripts/test`.
pub fn ran(suite: &str, test: &str) {
    record(&format!("{suite}\tran\t{test}\t"));
}

/// Records that `test` of an optional suite did not run and why, so a run that skipped it does not look
/// like a full one. Under `BARRACK_TEST_REQUIRE_ALL=1` (CI) a skip is a failure.
pub fn skipped(suite: &str, test: &str, reason: &str) {
    record(&format!("{suite}\tskipped\t{test}\t{reason}"));
    if std::env::var("BARRACK_TEST_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("BARRACK_TEST_REQUIRE_ALL=1 but {test} ({suite}) cannot run: {reason}");
    }
    eprintln!("SKIPPED {test} ({suite}): {reason}");
}

/// One line appended to the file `BARRACK_TEST_RECORD` names (tests run in parallel processes; each line
/// is one small append).
fn record(line: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("BARRACK_TEST_RECORD").filter(|p| !p.is_empty()) else {
        return;
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot append to BARRACK_TEST_RECORD {path:?}: {e}"));
    file.write_all(format!("{line}\n").as_bytes())
        .expect("record the test's outcome");
}

/// Defines `NAME::sqlite` and `NAME::postgres` tests from `async fn NAME(db: Db)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Db::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if !$crate::common::postgres_available(concat!(
                        module_path!(),
                        "::postgres"
                    )) {
                        return;
                    }
                    super::$name($crate::common::Db::Postgres).await
                }
            }
        )+
    };
}

/// The same server URL naming another database.
pub fn with_database(url: &str, name: &str) -> String {
    let authority = url.find("://").map(|i| i + 3).unwrap_or(0);
    let (without_query, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    match without_query[authority..].find('/') {
        Some(slash) => format!("{}/{name}{query}", &without_query[..authority + slash]),
        None => format!("{without_query}/{name}{query}"),
    }
}

/// A fresh, empty database for one test.
pub struct TestDatabase {
    pub db: Db,
    pub url: String,
    pub dir: PathBuf,
    pg_name: Option<String>,
}

impl TestDatabase {
    pub async fn create(db: Db) -> TestDatabase {
        let dir = std::env::temp_dir().join(format!(
            "barrack-test-{}",
            barrack_core::ids::random_alphanumeric(12)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        match db {
            Db::Sqlite => {
                let url = format!("sqlite://{}?mode=rwc", dir.join("barrack.db").display());
                TestDatabase {
                    db,
                    url,
                    dir,
                    pg_name: None,
                }
            }
            Db::Postgres => {
                let base = postgres_url().expect("BARRACK_TEST_POSTGRES_URL");
                let name = format!(
                    "barrack_test_{}",
                    barrack_core::ids::random_alphanumeric(12).to_lowercase()
                );
                let admin = barrack_store::Store::connect(&base, 1)
                    .await
                    .expect("connect to the test PostgreSQL");
                admin
                    .execute_script(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create a test database");
                admin.close().await;
                let url = with_database(&base, &name);
                TestDatabase {
                    db,
                    url,
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    pub async fn drop_database(&self) {
        if let (Some(name), Some(base)) = (&self.pg_name, postgres_url())
            && let Ok(admin) = barrack_store::Store::connect(&base, 1).await
        {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = admin.execute_script(&drop).await;
            admin.close().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running server for one test.
pub struct TestApp {
    pub db: Db,
    pub database: TestDatabase,
    pub running: Option<Running>,
    pub clock: Arc<ManualClock>,
    /// Operator client (the key the first start printed).
    pub admin: Client,
    pub admin_key: String,
    pub base_url: String,
}

/// Configuration of test servers: the defaults, on a random port, without rate limits.
pub fn test_config(database: &TestDatabase) -> Config {
    let defaults = Config::default();
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: database.dir.clone(),
        database_url: Some(database.url.clone()),
        database_max_connections: 8,
        secret: Some("test-secret-with-enough-length-for-hmac".into()),
        simulator: barrack_compute::sim::SimConfig {
            delays: barrack_compute::sim::SimDelays::instant(),
            ..defaults.simulator.clone()
        },
        rate_limit: barrack_core::config::RateLimitConfig {
            requests: 0,
            ..defaults.rate_limit.clone()
        },
        ..defaults
    }
}

/// 2025-01-15T10:30:00Z, the docs' example time.
pub const START_MS: i64 = 1_736_937_000_000;

impl TestApp {
    pub async fn start(db: Db) -> TestApp {
        TestApp::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: Db, configure: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::boot(db, configure, false).await
    }

    /// A server that runs its workers, reconcilers and meter in the background, as `barrackd serve` does,
    /// for clients that cannot call [`TestApp::settle`] (fuzzers, generated clients).
    pub async fn start_serving(db: Db, configure: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::boot(db, configure, true).await
    }

    /// A serving server on the real clock, as `barrackd serve` runs: for work that waits on time passing
    /// (machines booting, driver deadlines); `clock` is then not the server's.
    pub async fn start_in_real_time(db: Db, configure: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::boot_with(db, configure, true, true).await
    }

    async fn boot(db: Db, configure: impl FnOnce(&mut Config), background_work: bool) -> TestApp {
        TestApp::boot_with(db, configure, background_work, false).await
    }

    async fn boot_with(
        db: Db,
        configure: impl FnOnce(&mut Config),
        background_work: bool,
        real_time: bool,
    ) -> TestApp {
        let database = TestDatabase::create(db).await;
        let mut config = test_config(&database);
        configure(&mut config);
        let clock = Arc::new(ManualClock::starting_at(START_MS));
        let server_clock: Arc<dyn Clock> = if real_time {
            Arc::new(barrack_core::clock::OffsetClock::default())
        } else {
            clock.clone()
        };
        let running = barrack_server::start(StartOptions {
            config,
            clock: Some(server_clock),
            background_work,
        })
        .await
        .expect("server starts");
        let admin_key = running
            .bootstrap
            .as_ref()
            .expect("first start bootstraps an operator")
            .key
            .key
            .clone();
        let base_url = format!("http://{}", running.addr);
        let admin = Client::builder(&base_url)
            .api_key(&admin_key)
            .max_retries(0)
            .build()
            .unwrap();
        TestApp {
            db,
            database,
            running: Some(running),
            clock,
            admin,
            admin_key,
            base_url,
        }
    }

    /// Stops the server and starts it again on the same database, address and clock, with the
    /// configuration changed by `configure` (an operator editing prices, say); existing clients go on.
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut Config)) {
        let running = self.running.take().expect("running");
        let addr = running.addr;
        running.shutdown().await;
        let mut config = test_config(&self.database);
        config.listen = addr.to_string();
        configure(&mut config);
        self.running = Some(
            barrack_server::start(StartOptions {
                config,
                clock: Some(self.clock.clone() as Arc<dyn Clock>),
                background_work: false,
            })
            .await
            .expect("server restarts"),
        );
    }

    /// A second server on the same database and clock (a replica, or this one restarted), without
    /// background work: drive it with its own `settle`.
    pub async fn replica(&self) -> Running {
        barrack_server::start(StartOptions {
            config: test_config(&self.database),
            clock: Some(self.clock.clone() as Arc<dyn Clock>),
            background_work: false,
        })
        .await
        .expect("a second server starts")
    }

    pub fn anonymous(&self) -> Client {
        self.admin.anonymous()
    }

    /// A new ordinary account with a key of `tier`: its client and its id.
    pub async fn user(&self, tier: Tier) -> (Client, String) {
        let (client, id, _) = self.user_with_key(tier).await;
        (client, id)
    }

    /// A new ordinary account with a key of `tier`: its client, its id and the key itself.
    pub async fn user_with_key(&self, tier: Tier) -> (Client, String, String) {
        user_with_key(&self.admin, tier).await
    }

    /// A user with a complete profile in `country` and `amount` credits in its currency.
    pub async fn funded_user(&self, tier: Tier, country: &str, amount: &str) -> (Client, String) {
        let (client, id, _) = self.funded_user_with_key(tier, country, amount).await;
        (client, id)
    }

    /// [`TestApp::funded_user`], with the key itself.
    pub async fn funded_user_with_key(
        &self,
        tier: Tier,
        country: &str,
        amount: &str,
    ) -> (Client, String, String) {
        funded_user_with_key(&self.admin, tier, country, amount).await
    }

    pub async fn grant(&self, account_id: &str, amount: &str, currency: Currency) {
        self.admin
            .admin_grant_credits(
                account_id,
                &GrantCredits {
                    amount: amount.parse::<Decimal>().unwrap(),
                    currency,
                    note: None,
                },
            )
            .await
            .expect("grant credits");
    }

    /// Writes one entry of `kind` straight into the account's ledger, its balance moving with it: money
    /// spent or granted past the API's checks (a balance the API would not let a request reach).
    pub async fn write_ledger_entry(
        &self,
        account_id: &str,
        currency: Currency,
        kind: &str,
        amount_micros: i64,
    ) {
        let entry = barrack_store::ledger::LedgerEntryRow {
            id: barrack_core::ids::transaction_id(),
            account_id: account_id.to_string(),
            currency: currency.as_str().to_string(),
            kind: kind.to_string(),
            amount_micros,
            balance_after_micros: 0,
            description: format!("{kind} written into the ledger"),
            idempotency_key: None,
            created_by: None,
            created_at: self.clock.now_ms(),
        };
        let store = self.services().store();
        let mut tx = store.begin().await.unwrap();
        barrack_store::ledger::append(&mut tx, &entry, barrack_core::ids::transaction_id)
            .await
            .unwrap()
            .expect("a new entry");
        tx.commit().await.unwrap();
    }

    /// Sets an account's country in the database, past the rule that fixes a currency in use: the state of
    /// an account that holds money in two currencies (one moved before that rule, say).
    pub async fn set_country_in_database(&self, account_id: &str, country: &str) {
        let store = self.services().store();
        let account = store.account_by_id(account_id).await.unwrap().unwrap();
        let fields = barrack_store::accounts::ProfileFields {
            name: account.name,
            phone: account.phone,
            address_line: account.address_line,
            city: account.city,
            state: account.state,
            postal_code: account.postal_code,
            country: Some(country.to_string()),
        };
        assert!(
            store
                .update_profile(account_id, &fields, account.updated_at)
                .await
                .unwrap()
        );
    }

    /// Runs all due work (jobs, reconciliation) to completion: the step mode of the simulated data centre.
    pub async fn settle(&self) -> usize {
        self.running
            .as_ref()
            .expect("running")
            .settle()
            .await
            .expect("settle")
    }

    /// The simulator's next call of `operation` fails, for good or to be retried.
    pub fn fail_next(&self, operation: barrack_compute::Operation, permanent: bool) {
        self.simulator()
            .inject(barrack_compute::sim::Fault::FailNth {
                operation,
                nth: 1,
                permanent,
            })
            .unwrap();
    }

    pub fn simulator(&self) -> &barrack_compute::sim::SimDriver {
        self.running
            .as_ref()
            .expect("running")
            .simulator
            .as_deref()
            .expect("simulated")
    }

    pub fn services(&self) -> &barrack_core::Services {
        &self.running.as_ref().expect("running").services
    }

    /// Stops the server and removes its database.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        self.database.drop_database().await;
    }
}

/// A new ordinary account with a key of `tier`, made by the operator client `admin`: its client, its id
/// and the key itself.
pub async fn user_with_key(admin: &Client, tier: Tier) -> (Client, String, String) {
    let n = barrack_core::ids::random_alphanumeric(8).to_lowercase();
    let user = admin
        .admin_create_user(&AdminCreateUser {
            email: format!("user-{n}@example.com"),
            password: "correct horse battery".into(),
            name: "Test User".into(),
            admin: false,
        })
        .await
        .expect("create user")
        .data;
    let key = admin
        .admin_create_api_key(&user.id, "test", tier)
        .await
        .expect("create key")
        .data;
    (admin.with_api_key(&key.key.key), user.id, key.key.key)
}

/// [`user_with_key`] with a complete profile in `country` and `amount` credits in its currency.
pub async fn funded_user_with_key(
    admin: &Client,
    tier: Tier,
    country: &str,
    amount: &str,
) -> (Client, String, String) {
    let (client, id, key) = user_with_key(admin, tier).await;
    let profile = client
        .update_profile(&ProfileUpdate {
            address_line: Some(Some("1 Test Street".into())),
            postal_code: Some(Some("00100".into())),
            country: Some(Some(country.into())),
            ..Default::default()
        })
        .await
        .expect("complete the profile")
        .data;
    assert!(profile.profile_complete);
    admin
        .admin_grant_credits(
            &id,
            &GrantCredits {
                amount: amount.parse().unwrap(),
                currency: profile.currency,
                note: None,
            },
        )
        .await
        .expect("grant credits");
    (client, id, key)
}

/// A client of `server` with the API key `key`.
pub fn client_of(server: &Running, key: &str) -> Client {
    Client::builder(format!("http://{}", server.addr))
        .api_key(key)
        .max_retries(0)
        .build()
        .unwrap()
}

/// GPUs of `gpu_model` the stock shows free in `region`.
pub async fn free_gpus(app: &TestApp, region: &str, gpu_model: &str) -> u32 {
    let query = barrack_api::catalog::CatalogQuery {
        region: Some(region.into()),
        gpu_model: Some(gpu_model.into()),
        ..Default::default()
    };
    app.anonymous()
        .gpu_stocks(&query)
        .await
        .unwrap()
        .data
        .stocks[0]
        .available
}

/// Capacity allocations equal the GPUs live instances hold, no address belongs to two instances, and the
/// kept count of each account's live instances is what counting them gives.
pub async fn assert_derived_state_consistent(store: &barrack_store::Store) {
    let held = store.gpus_held().await.unwrap();
    for row in store.capacity().await.unwrap() {
        let holding = held
            .iter()
            .find(|(r, m, _)| *r == row.region && *m == row.gpu_model)
            .map(|h| h.2)
            .unwrap_or(0);
        assert_eq!(row.allocated, holding, "{} {}", row.region, row.gpu_model);
    }
    let assignments = store.public_ip_assignments().await.unwrap();
    let mut owners: Vec<&String> = assignments.iter().map(|(_, owner)| owner).collect();
    owners.sort();
    owners.dedup();
    assert_eq!(
        owners.len(),
        assignments.len(),
        "no instance holds two addresses"
    );
    let pairs = |sql: &str| {
        let sql = sql.to_string();
        async move {
            let rows = store.fetch_all(&sql, &[]).await.unwrap();
            rows.iter()
                .map(|r| (r.text(0).unwrap(), r.int(1).unwrap()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        pairs(
            "SELECT account_id, live FROM account_instance_counts WHERE live > 0 ORDER BY account_id"
        )
        .await,
        pairs(
            "SELECT account_id, COUNT(*) FROM instances WHERE status <> 'DELETED' \
             GROUP BY account_id ORDER BY account_id"
        )
        .await,
        "the kept counts of live instances are the counts"
    );
    // Counts kept per account, currency and rate, in shards that sum to them.
    assert_eq!(
        pairs(
            "SELECT account_id || ' ' || currency || ' ' || hourly_rate, CAST(SUM(periods) AS BIGINT) \
             FROM open_period_rates GROUP BY account_id, currency, hourly_rate \
             HAVING SUM(periods) <> 0 ORDER BY 1"
        )
        .await,
        pairs(
            "SELECT account_id || ' ' || currency || ' ' || hourly_rate, COUNT(*) FROM billing_periods \
             WHERE ended_at IS NULL GROUP BY account_id, currency, hourly_rate ORDER BY 1"
        )
        .await,
        "the kept counts of open periods by rate are the counts"
    );
    // Counts of instances heading to a billed state, kept per shape in shards that sum to them; counted
    // here with the store's list of those states, so triggers with another list fail this.
    let heading = barrack_store::instances::HEADING_STATES
        .map(|s| format!("'{s}'"))
        .join(", ");
    let shape = "account_id || ' ' || currency || ' ' || status || ' ' || gpu_model || ' ' || \
                 gpu_count || ' ' || os_volume_type || ' ' || storage_gb";
    assert_eq!(
        pairs(&format!(
            "SELECT {shape} || ' ' || boot_volume, CAST(SUM(instances) AS BIGINT) \
             FROM instance_heading_counts GROUP BY {shape}, boot_volume \
             HAVING SUM(instances) <> 0 ORDER BY 1"
        ))
        .await,
        pairs(&format!(
            "SELECT {shape} || ' ' || CASE WHEN boot_volume_id IS NULL THEN 0 ELSE 1 END, COUNT(*) \
             FROM instances WHERE status IN ({heading}) \
             GROUP BY {shape}, CASE WHEN boot_volume_id IS NULL THEN 0 ELSE 1 END \
             ORDER BY 1"
        ))
        .await,
        "the kept counts of heading instances by shape are the counts"
    );
}

/// Deploys an instance and answers its id; the deploy must be accepted.
pub async fn deploy_id(client: &Client, request: &DeployRequest) -> String {
    client
        .deploy(request)
        .await
        .expect("deploy accepted")
        .data
        .instance_id
}

/// The account's first 100 events, oldest first.
pub async fn events_of(client: &Client) -> Vec<barrack_api::instances::Event> {
    client
        .events(&barrack_api::PageQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .events
}

/// Creates an SSH key named "k" (generated public key) for deploys that name it.
pub async fn create_key_k(client: &Client) {
    client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "k".into(),
            public_key: None,
        })
        .await
        .expect("create SSH key k");
}

/// A firewall of FINLAND-1 letting SSH in: the quickest change that writes events (`created`, then
/// `status_changed` when settled).
pub fn ssh_firewall(name: &str) -> CreateFirewallRequest {
    CreateFirewallRequest {
        name: name.into(),
        description: None,
        region: "FINLAND-1".into(),
        rules: vec![SecurityRuleRequest {
            direction: "ingress".into(),
            protocol: Some("tcp".into()),
            ethertype: None,
            port_range_min: Some(22),
            port_range_max: Some(22),
            remote_ip_prefix: None,
        }],
        labels: Default::default(),
    }
}

/// A plain HTTP client's builder, for requests the typed client does not make. reqwest's TLS has no crypto
/// provider of its own, so one is installed first (as the server and the client crate do).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    barrack_client::install_tls_provider();
    reqwest::Client::builder()
}

/// A plain HTTP client (see [`http_client_builder`]).
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("an HTTP client")
}

/// The password of the accounts [`ordinary_account`] makes.
pub const ORDINARY_PASSWORD: &str = "correct horse battery";

/// A new ordinary account made by the operator, with an API key of `tier`: its id, its email (`prefix`
/// and random letters) and a client on the key. Its password is [`ORDINARY_PASSWORD`].
pub async fn ordinary_account(app: &TestApp, prefix: &str, tier: Tier) -> (String, String, Client) {
    let email = format!(
        "{prefix}-{}@example.com",
        barrack_core::ids::random_alphanumeric(8).to_lowercase()
    );
    let user = app
        .admin
        .admin_create_user(&AdminCreateUser {
            email: email.clone(),
            password: ORDINARY_PASSWORD.into(),
            name: "Ordinary User".into(),
            admin: false,
        })
        .await
        .unwrap()
        .data;
    let key = app
        .admin
        .admin_create_api_key(&user.id, "k", tier)
        .await
        .unwrap()
        .data;
    (user.id, email, app.admin.with_api_key(&key.key.key))
}
