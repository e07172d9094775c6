//! A user's first hour, through the binaries only: `barrackd serve` in an empty data directory, then
//! `barrack` configured with the key it printed, an SSH key made by `ssh-keygen`, a deploy that waits,
//! lists, stop, start, a snapshot, and deletes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::Barrack;

/// `barrackd`, built next to `barrack` by the workspace build.
fn barrackd() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_barrack")).with_file_name("barrackd");
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries (cargo build --bins)",
        path.display()
    );
    path
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_first_hour_through_the_binaries() {
    let dir = std::env::temp_dir().join(format!("barrack-journey-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(barrackd())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env_remove("BARRACK_DATABASE_URL")
        .env("BARRACK_SIMULATOR_DELAYS_CREATE_MS", "50")
        .env("BARRACK_SIMULATOR_DELAYS_START_MS", "50")
        .env("BARRACK_SIMULATOR_DELAYS_STOP_MS", "50")
        .env("BARRACK_SIMULATOR_DELAYS_SNAPSHOT_MS", "50")
        .env("BARRACK_SIMULATOR_DELAYS_DELETE_MS", "50")
        .env("BARRACK_JOBS_POLL_INTERVAL_MS", "20")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("barrackd starts");
    let mut key = None;
    let mut url = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.trim().starts_with("sk_") {
            key = Some(line.trim().to_string());
        }
        if let Some(rest) = line.strip_prefix("Barrack API listening on ") {
            url = Some(rest.trim().trim_end_matches("/api/").to_string());
            break;
        }
    }
    let _server = Server(child);
    let (key, url) = (key.expect("the first start prints a key"), url.unwrap());

    let config = dir.join("cli.toml");
    let cli = Barrack::default()
        .env("BARRACK_CLI_CONFIG", config.to_str().unwrap())
        .env("HOME", dir.to_str().unwrap())
        .env("PATH", &std::env::var("PATH").unwrap_or_default());
    cli.run(&["configure", "--api-url", &url, "--api-key", &key])
        .await
        .ok();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // The operator's own account: a billing profile and credits.
    let me = cli.run(&["account", "show", "-o", "json"]).await.json();
    let id = me["id"].as_str().unwrap().to_string();
    cli.run(&[
        "account",
        "update",
        "--address-line",
        "1 Main St",
        "--postal-code",
        "10001",
        "--country",
        "US",
    ])
    .await
    .ok();
    cli.run(&[
        "admin",
        "grant-credits",
        "--user",
        &id,
        "--amount",
        "100",
        "--currency",
        "USD",
    ])
    .await
    .ok();

    let ssh = dir.join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "journey", "-f"])
        .arg(&ssh)
        .status()
        .expect("ssh-keygen runs");
    assert!(made.success());
    let public = format!("{}.pub", ssh.display());
    cli.run(&["ssh-keys", "import", "--name", "laptop", "--file", &public])
        .await
        .ok();

    let deployed = cli
        .run(&[
            "instances",
            "deploy",
            "--name",
            "trainer",
            "--gpu-model",
            "H100-SXM5-80GB",
            "--gpu-count",
            "1",
            "--region",
            "FINLAND-1",
            "--image",
            "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
            "--ssh-key",
            "laptop",
            "--wait",
            "--timeout",
            "60",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(deployed["status"], "ACTIVE");
    let instance = deployed["instance_id"].as_str().unwrap().to_string();

    let table = cli.run(&["instances", "list"]).await;
    assert!(
        table.ok().contains("trainer") && table.ok().contains("ACTIVE"),
        "{table:?}"
    );
    let listed = cli.run(&["instances", "list", "-o", "json"]).await.json();
    assert_eq!(listed["instances"][0]["instance_id"], instance.as_str());

    cli.run(&["instances", "stop", "trainer", "--wait", "--timeout", "60"])
        .await
        .ok();
    cli.run(&["instances", "start", "trainer", "--wait", "--timeout", "60"])
        .await
        .ok();

    let snapshot = cli
        .run(&[
            "snapshots",
            "create",
            "--instance",
            &instance,
            "--name",
            "golden",
            "-q",
        ])
        .await;
    let snapshot = snapshot.ok().trim().to_string();
    let mut status = String::new();
    for _ in 0..200 {
        status = cli
            .run(&["snapshots", "show", &snapshot, "-o", "json"])
            .await
            .json()["status"]
            .as_str()
            .unwrap()
            .to_string();
        if status == "SUCCESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "SUCCESS");

    cli.run(&[
        "instances",
        "delete",
        "trainer",
        "--wait",
        "--timeout",
        "60",
    ])
    .await
    .ok();
    cli.run(&["snapshots", "delete", &snapshot]).await.ok();
    let gone = cli.run(&["instances", "show", &instance]).await;
    assert_eq!(gone.code, 4, "{gone:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
