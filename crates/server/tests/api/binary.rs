//! Black-box: the release-style binary, started as a user would, with no configuration.

use std::path::Path;

use barrack_api::Tier;
use barrack_client::Client;

use crate::common::process::spawn;

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// First start prints an operator key once and keeps it in a 0600 file; secrets appear in no log line and
/// in no database file; the second start reuses everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_configuration_start_keeps_secrets_out_of_logs_and_database() {
    let dir = std::env::temp_dir().join(format!(
        "barrack-bin-{}",
        barrack_core::ids::random_alphanumeric(10)
    ));
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("first.log");
    let server = spawn(&data, &log, &[]);
    let key = server
        .printed_key
        .clone()
        .expect("the first start prints the operator key");
    let credentials = std::fs::read_to_string(data.join("admin-credentials")).unwrap();
    assert!(credentials.contains(&key));
    #[cfg(unix)]
    {
        assert_eq!(mode(&data.join("admin-credentials")), 0o600);
        assert_eq!(mode(&data.join("server.secret")), 0o600);
        assert_eq!(mode(&data), 0o700, "the data directory is private");
        assert_eq!(
            mode(&data.join("barrack.db")),
            0o600,
            "the database is private"
        );
    }

    let client = Client::builder(&server.url).api_key(&key).build().unwrap();
    client.regions(&Default::default()).await.unwrap();
    assert!(client.balance().await.is_ok());
    let second = client
        .create_api_key("second", Tier::Legacy)
        .await
        .unwrap()
        .data
        .key;
    assert!(client.with_api_key(&second).balance().await.is_ok());
    let token = client
        .anonymous()
        .obtain_token(&barrack_api::account::TokenObtainPair {
            email: "admin@barrack.local".into(),
            password: credentials
                .lines()
                .find_map(|l| l.strip_prefix("password: "))
                .unwrap()
                .into(),
            tier: None,
        })
        .await
        .unwrap()
        .data;
    assert!(client.with_bearer(&token.access).profile().await.is_ok());
    assert!(client.with_api_key("sk_guessing").balance().await.is_err());
    server.stop();

    let secrets = [&key[3..], &second[3..], &token.access, &token.refresh];
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("request"), "requests are logged");
    assert!(
        !log_text.contains('\x1b'),
        "a log file holds no terminal escape codes"
    );
    for file in std::fs::read_dir(&data).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("barrack.db") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "a secret is stored in plain text in {name}"
            );
        }
    }
    for secret in secrets {
        assert!(!log_text.contains(secret), "a secret was logged");
    }

    // Second start: no new operator, the same key works.
    let server = spawn(&data, &dir.join("second.log"), &[]);
    assert!(
        server.printed_key.is_none(),
        "the operator key is printed once in an installation's life"
    );
    let client = Client::builder(&server.url).api_key(&key).build().unwrap();
    assert!(client.balance().await.is_ok());
    server.stop();
    std::fs::remove_dir_all(&dir).ok();
}

/// `barrackd openapi | head`: the reader leaving early ends the command quietly, not in a panic about a
/// broken pipe with a backtrace.
#[test]
fn a_reader_leaving_early_ends_a_printing_command_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_barrackd"))
        .arg("openapi")
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("barrackd runs");
    let mut stdout = child.stdout.take().unwrap();
    // The document is far larger than a pipe holds: the rest is written after the reader left.
    let mut head = [0u8; 1024];
    stdout.read_exact(&mut head).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert_eq!(stderr, "");
}
