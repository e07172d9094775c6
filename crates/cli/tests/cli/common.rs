//! The harness: a server on 127.0.0.1:0 over a fresh SQLite file, and the `barrack` binary run against it
//! with a clean environment and its own config file.
//!
//! The server runs its background work (jobs, reconciliation) against a simulated data centre without
//! delays, so operations finish on their own and `--wait` has something to wait for.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use barrack_api::Currency;
use barrack_api::account::{GrantCredits, ProfileUpdate};
use barrack_client::Client;
use barrack_compute::sim::{SimConfig, SimDelays};
use barrack_core::clock::{Clock, ManualClock};
use barrack_core::config::{Config, RateLimitConfig};
use barrack_server::{Running, StartOptions};
use tokio::io::AsyncWriteExt;

/// 2025-01-15T10:30:00Z. A fixed clock keeps time-stamped answers (pricing metadata) comparable.
const START_MS: i64 = 1_736_937_000_000;

pub struct TestServer {
    running: Option<Running>,
    pub url: String,
    /// The operator key the first start created.
    pub admin_key: String,
    /// Holds the database and the CLI's config file.
    pub dir: PathBuf,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose configuration `configure` changed first.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> TestServer {
        let dir = std::env::temp_dir().join(format!(
            "barrack-cli-test-{}",
            barrack_core::ids::random_alphanumeric(12)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let defaults = Config::default();
        let config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.clone(),
            database_url: Some(format!(
                "sqlite://{}?mode=rwc",
                dir.join("barrack.db").display()
            )),
            database_max_connections: 4,
            secret: Some("test-secret-with-enough-length-for-hmac".into()),
            simulator: SimConfig {
                delays: SimDelays::instant(),
                ..defaults.simulator.clone()
            },
            rate_limit: RateLimitConfig {
                requests: 0,
                ..defaults.rate_limit.clone()
            },
            ..defaults
        };
        let mut config = config;
        configure(&mut config);
        let running = barrack_server::start(StartOptions {
            clock: Some(Arc::new(ManualClock::starting_at(START_MS)) as Arc<dyn Clock>),
            ..StartOptions::new(config)
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
        TestServer {
            url: format!("http://{}", running.addr),
            running: Some(running),
            admin_key,
            dir,
        }
    }

    /// The CLI pointed at this server with the operator key, through the environment.
    pub fn barrack(&self) -> Barrack {
        self.barrack_without_env()
            .env("BARRACK_API_URL", &self.url)
            .env("BARRACK_API_KEY", &self.admin_key)
    }

    /// The CLI with only its config file (no URL or key in the environment).
    pub fn barrack_without_env(&self) -> Barrack {
        Barrack {
            env: vec![
                (
                    "BARRACK_CLI_CONFIG".into(),
                    self.config_path().display().to_string(),
                ),
                ("HOME".into(), self.dir.display().to_string()),
            ],
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("cli").join("config.toml")
    }

    /// A typed client with the operator key, to compare the CLI with the API.
    pub fn client(&self) -> Client {
        Client::builder(&self.url)
            .api_key(&self.admin_key)
            .max_retries(0)
            .build()
            .unwrap()
    }

    /// Gives the operator's own account what deploying needs: a complete billing profile and credits.
    pub async fn fund_operator(&self, usd: u32) {
        let client = self.client();
        let profile = client
            .update_profile(&ProfileUpdate {
                address_line: Some(Some("1 Test Street".into())),
                postal_code: Some(Some("10001".into())),
                country: Some(Some("US".into())),
                ..Default::default()
            })
            .await
            .expect("complete the operator's profile")
            .data;
        assert!(profile.profile_complete);
        client
            .admin_grant_credits(
                &profile.id,
                &GrantCredits {
                    amount: usd.into(),
                    currency: Currency::USD,
                    note: None,
                },
            )
            .await
            .expect("grant credits");
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `barrack` invocation's environment.
#[derive(Clone, Default)]
pub struct Barrack {
    env: Vec<(String, String)>,
}

/// What an invocation did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "barrack failed: {self:?}");
        &self.stdout
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The stdout lines.
    pub fn lines(&self) -> Vec<&str> {
        self.ok().lines().collect()
    }
}

impl Barrack {
    pub fn env(mut self, name: &str, value: &str) -> Barrack {
        self.env.push((name.into(), value.into()));
        self
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, "").await
    }

    /// Runs with stdout and stderr on a terminal (a pseudo-terminal that util-linux's `script` opens), as
    /// a person at a shell would; `stdout` holds everything the terminal showed.
    pub async fn run_on_terminal(&self, args: &[&str]) -> Run {
        let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
        let line: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_barrack"))
            .chain(args.iter().copied())
            .map(quote)
            .collect();
        let out = tokio::process::Command::new("script")
            .args(["-qec", &line.join(" "), "/dev/null"])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("TERM", "xterm")
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .expect("run script(1)");
        Run {
            code: out.status.code().expect("exited, not killed"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs with `input` on stdin (then end of input), as a pipe: no terminal, like CI.
    pub async fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_barrack"))
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run barrack");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        Run {
            code: out.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}
