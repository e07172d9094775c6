//! Running `barrackd` as a separate process, as a user or an operator would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use barrack_api::Currency;
use barrack_api::account::{GrantCredits, ProfileUpdate};
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::Client;

pub struct ServerProcess {
    child: Child,
    pub url: String,
    /// The operator key, printed on the very first start only.
    pub printed_key: Option<String>,
    pub log: PathBuf,
}

/// Starts `barrackd serve` on a free port with `data_dir`, extra environment, and its log in `log`;
/// returns once it listens.
// The child is waited for in `stop` and `kill`.
#[allow(clippy::zombie_processes)]
pub fn spawn(data_dir: &Path, log: &Path, env: &[(&str, &str)]) -> ServerProcess {
    let log_file = std::fs::File::create(log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_barrackd"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("BARRACK_DATABASE_URL")
        .env_remove("BARRACK_CONFIG")
        .env("BARRACK_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(log_file);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("barrackd starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed_key = None;
    loop {
        let Some(Ok(line)) = lines.next() else {
            panic!(
                "barrackd exited before listening: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        if let Some(key) = line.trim().strip_prefix("sk_") {
            printed_key = Some(format!("sk_{key}"));
        }
        if let Some(rest) = line.strip_prefix("Barrack API listening on ") {
            let url = rest.trim().trim_end_matches("/api/").to_string();
            return ServerProcess {
                child,
                url,
                printed_key,
                log: log.to_path_buf(),
            };
        }
    }
}

/// A test that fails midway must not leave its server running.
impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl ServerProcess {
    /// SIGTERM and wait: a graceful stop.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        // Still running: dropping kills it.
    }

    /// SIGKILL: the process dies wherever it is.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

/// Gives the account of `client` (the operator's, in these tests) a complete profile, 100,000 USD of
/// credit and an SSH key named `key_name`; returns the name.
pub async fn prepare_operator(client: &Client, key_name: &str) -> String {
    let profile = client
        .update_profile(&ProfileUpdate {
            address_line: Some(Some("1 Main St".into())),
            postal_code: Some(Some("10001".into())),
            country: Some(Some("US".into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    let grant = GrantCredits {
        amount: "100000".parse().unwrap(),
        currency: Currency::USD,
        note: None,
    };
    client
        .admin_grant_credits(&profile.id, &grant)
        .await
        .unwrap();
    client
        .create_ssh_key(&CreateSshKeyRequest {
            name: key_name.into(),
            public_key: None,
        })
        .await
        .unwrap();
    key_name.into()
}
