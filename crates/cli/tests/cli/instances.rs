//! Instances end to end through the binary: an imported key, deploy and lifecycle with `--wait`, every
//! output form, `ssh --print`, the ERROR path, and the API's field errors.

use std::path::Path;
use std::process::Command;

use reqwest::Method;

use crate::common::{Barrack, TestServer};

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

/// A key pair made by the system's `ssh-keygen`, as a user would have one.
fn ssh_keygen(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ada@laptop", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    path.with_extension("pub")
}

fn deploy_args<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "instances",
        "deploy",
        "--name",
        name,
        "--gpu-model",
        "H100-SXM5-80GB",
        "--gpu-count",
        "1",
        "--region",
        "FINLAND-1",
        "--image",
        IMAGE,
        "--ssh-key",
        "laptop",
    ];
    args.extend_from_slice(extra);
    args
}

async fn import_key(server: &TestServer, cli: &Barrack) -> String {
    let public = ssh_keygen(&server.dir);
    let imported = cli
        .run(&[
            "ssh-keys",
            "import",
            "--name",
            "laptop",
            "--file",
            public.to_str().unwrap(),
            "-q",
        ])
        .await;
    let id = imported.lines()[0].to_string();
    let shown = cli.run(&["ssh-keys", "show", &id]).await;
    assert!(shown.ok().contains("ssh-ed25519"), "{shown:?}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_lives_its_life_through_the_cli() {
    let server = TestServer::start().await;
    server.fund_operator(100).await;
    let cli = server.barrack();
    let api = server.client();
    import_key(&server, &cli).await;

    let deployed = cli
        .run(&deploy_args(
            "trainer",
            &[
                "--rule",
                "ingress:tcp:22-22:0.0.0.0/0",
                "--wait",
                "-o",
                "json",
            ],
        ))
        .await
        .json();
    assert_eq!(deployed["status"], "ACTIVE", "{deployed}");
    assert_eq!(deployed["security_rules"][0]["port_range_min"], 22);
    let id = deployed["instance_id"].as_str().unwrap().to_string();
    let address = deployed["ip_address"].as_str().unwrap().to_string();

    let table = cli.run(&["instances", "list"]).await;
    let mut lines = table.ok().lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "NAME", "STATUS", "REGION", "GPUS", "IP"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        [
            id.as_str(),
            "trainer",
            "ACTIVE",
            "FINLAND-1",
            "H100-SXM5-80GB×1",
            address.as_str()
        ]
    );
    let listed = cli.run(&["instances", "list", "-o", "json"]).await.json();
    let answer = api
        .raw(Method::GET, "/api/instances/", None)
        .await
        .unwrap()
        .body;
    assert_eq!(listed, answer["data"]);
    assert_eq!(
        cli.run(&["instances", "list", "--status", "ACTIVE", "-q"])
            .await
            .lines(),
        [id.as_str()]
    );
    assert_eq!(
        cli.run(&["instances", "list", "--status", "active", "-q"])
            .await
            .lines(),
        [id.as_str()]
    );
    // BUILD, the API's other name for CREATING, in any case too.
    let building = api
        .raw(Method::GET, "/api/instances/?status=CREATING", None)
        .await
        .unwrap()
        .body;
    assert_eq!(
        cli.run(&["instances", "list", "--status", "build", "-o", "json"])
            .await
            .json(),
        building["data"]
    );
    // The valid values listed are exactly those accepted: DELETED is neither.
    for refused in ["bogus", "DELETED"] {
        let run = cli.run(&["instances", "list", "--status", refused]).await;
        assert_eq!(run.code, 2, "{run:?}");
        assert!(
            run.stderr.contains("CREATING") && run.stderr.contains("ERROR"),
            "{run:?}"
        );
        assert!(!run.stderr.contains("DELETED,"), "{run:?}");
    }
    // A page past the end says so, and how many there are, rather than "No instances.".
    let past = cli.run(&["instances", "list", "--page", "99"]).await;
    assert_eq!(past.ok(), "Page 99 is past the end: 1 in all, on page 1\n");

    // By name from here on.
    let stopped = cli.run(&["instances", "stop", "trainer", "--wait"]).await;
    assert_eq!(stopped.ok(), format!("{id} (trainer) is SHUTOFF\n"));
    let shown = cli
        .run(&["instances", "show", "trainer", "-o", "json"])
        .await
        .json();
    assert_eq!(shown["status"], "SHUTOFF");
    let started = cli
        .run(&["instances", "start", "trainer", "--wait", "-o", "json"])
        .await
        .json();
    assert_eq!(started["status"], "ACTIVE");

    let ssh = cli.run(&["instances", "ssh", "trainer", "--print"]).await;
    assert_eq!(ssh.ok(), format!("ssh ubuntu@{address}\n"));
    let with_args = cli
        .run(&[
            "instances",
            "ssh",
            &id,
            "--print",
            "--",
            "-i",
            "my key",
            "nvidia-smi",
        ])
        .await;
    assert_eq!(
        with_args.ok(),
        format!("ssh ubuntu@{address} -i 'my key' nvidia-smi\n")
    );

    let metrics = cli.run(&["instances", "metrics", "trainer"]).await;
    assert!(
        metrics.ok().contains(&format!("Instance:      {id}")),
        "{metrics:?}"
    );
    assert!(
        metrics.ok().contains("CPU:") && metrics.ok().contains(" %"),
        "{metrics:?}"
    );
    let figures = cli
        .run(&["instances", "metrics", &id, "-o", "json"])
        .await
        .json();
    assert_eq!(figures["instance_id"], id.as_str());
    assert!(figures["memory_total_bytes"].as_u64().unwrap() > 0);

    let hosts = cli.run(&["admin", "hosts"]).await;
    let header: Vec<&str> = hosts
        .ok()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "REGION", "GPU", "MODEL", "GPUS", "USED", "FREE", "LOST"
        ]
    );
    let busy: Vec<&str> = hosts
        .ok()
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some("1"))
        .collect();
    assert_eq!(busy.len(), 1, "one host runs the instance: {hosts:?}");
    assert!(
        busy[0].contains("FINLAND-1") && busy[0].ends_with("no"),
        "{hosts:?}"
    );
    let lost = cli
        .run(&[
            "admin",
            "inject-fault",
            "--kind",
            "lose_host",
            "--host",
            "nowhere",
        ])
        .await;
    assert_eq!(lost.code, 4, "an unknown host is not found: {lost:?}");

    let events = cli.run(&["instances", "events", "trainer"]).await;
    assert!(events.ok().contains("SHUTOFF"), "{events:?}");
    assert!(cli.run(&["events", "-q"]).await.lines().len() >= 4);

    let deleted = cli.run(&["instances", "delete", "trainer", "--wait"]).await;
    assert_eq!(deleted.ok(), format!("Deleted instance {id}\n"));
    let gone = cli.run(&["instances", "show", &id]).await;
    assert_eq!(gone.code, 4, "{gone:?}");
    let by_name = cli.run(&["instances", "show", "trainer"]).await;
    assert_eq!(by_name.code, 4, "{by_name:?}");
    assert_eq!(
        cli.run(&["instances", "list"]).await.ok(),
        "No instances.\n"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_a_failed_deploy_exits_1_with_the_reason() {
    let server = TestServer::start().await;
    server.fund_operator(100).await;
    let cli = server.barrack();
    import_key(&server, &cli).await;

    let fault = cli
        .run(&[
            "admin",
            "inject-fault",
            "--kind",
            "fail_nth",
            "--operation",
            "create_instance",
            "--nth",
            "1",
            "--permanent",
        ])
        .await;
    assert!(fault.ok().starts_with("Injected fault"), "{fault:?}");
    let failed = cli.run(&deploy_args("doomed", &["--wait"])).await;
    assert_eq!(failed.code, 1, "{failed:?}");
    assert!(
        failed.stderr.contains("is in ERROR: "),
        "the reason is shown: {}",
        failed.stderr
    );
    let deleted = cli.run(&["instances", "delete", "doomed", "--wait"]).await;
    assert!(deleted.ok().starts_with("Deleted instance"), "{deleted:?}");

    // A transient failure is retried after a backoff, which the test server's stopped clock never
    // reaches: the instance stays STOPPING and the wait gives up.
    let id = cli
        .run(&deploy_args("stuck", &["--wait", "-q"]))
        .await
        .lines()[0]
        .to_string();
    cli.run(&[
        "admin",
        "inject-fault",
        "--json",
        r#"{"kind": "fail_nth", "operation": "stop_instance", "nth": 1}"#,
    ])
    .await
    .ok();
    let timed_out = cli
        .run(&["instances", "stop", &id, "--wait", "--timeout", "1"])
        .await;
    assert_eq!(timed_out.code, 1, "{timed_out:?}");
    assert!(
        timed_out.stderr.contains(&format!(
            "timed out after 1s waiting for {id} to become SHUTOFF; it is STOPPING"
        )),
        "{}",
        timed_out.stderr
    );
    let jobs = cli.run(&["admin", "jobs"]).await;
    assert!(
        jobs.ok()
            .lines()
            .any(|l| l.contains(&id) && l.contains("pending")),
        "{jobs:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deploys_print_the_apis_field_errors() {
    let server = TestServer::start().await;
    let cli = server.barrack();
    let long_name = "n".repeat(31);
    let bad = cli
        .run(&[
            "instances",
            "deploy",
            "--name",
            &long_name,
            "--gpu-model",
            "GTX-1080",
            "--region",
            "FINLAND-1",
            "--image",
            IMAGE,
            "--ssh-key",
            "laptop",
        ])
        .await;
    assert_eq!(bad.code, 6, "{bad:?}");
    assert!(bad.stdout.is_empty());
    assert!(bad.stderr.contains("VALIDATION_ERROR"), "{}", bad.stderr);
    assert!(
        bad.stderr
            .lines()
            .any(|l| l.starts_with("  gpu_model: ") && l.contains("GTX-1080")),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr
            .lines()
            .any(|l| l.starts_with("  instance_name: ") && l.contains("30 characters")),
        "{}",
        bad.stderr
    );

    let missing = cli.run(&["instances", "stop", "no-such-instance"]).await;
    assert_eq!(missing.code, 4, "{missing:?}");
    assert!(missing.stderr.contains("no-such-instance"));
    server.stop().await;
}

/// On a terminal, `--wait -q` prints the id and nothing else: no spinner, no escape codes. `instances ssh`
/// on the simulated data centre says at once that there is no machine to reach (`--print` still prints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_waits_draw_nothing_and_simulated_instances_refuse_ssh() {
    let server = TestServer::start().await;
    server.fund_operator(100).await;
    let cli = server.barrack();
    import_key(&server, &cli).await;

    let deployed = cli
        .run_on_terminal(&deploy_args("quiet", &["--wait", "-q"]))
        .await;
    assert_eq!(deployed.code, 0, "{deployed:?}");
    assert!(
        !deployed.stdout.contains('\x1b'),
        "escape codes on the terminal: {:?}",
        deployed.stdout
    );
    let id = deployed.stdout.trim().to_string();
    assert!(id.starts_with("BRK-"), "{deployed:?}");
    // On a pipe, as in a log or CI, neither stream gets escape codes either.
    let stopped = cli.run(&["instances", "stop", &id, "--wait"]).await;
    stopped.ok();
    assert!(
        !stopped.stderr.contains('\x1b') && !stopped.stdout.contains('\x1b'),
        "{stopped:?}"
    );
    let started = cli
        .run_on_terminal(&["instances", "start", &id, "--wait", "-o", "json"])
        .await;
    assert_eq!(started.code, 0, "{started:?}");
    assert!(!started.stdout.contains('\x1b'), "{started:?}");

    let started = std::time::Instant::now();
    let ssh = cli.run(&["instances", "ssh", "quiet"]).await;
    assert_eq!(ssh.code, 1, "{ssh:?}");
    assert!(ssh.stderr.contains("simulated"), "{ssh:?}");
    assert!(ssh.stderr.contains(&id), "{ssh:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let printed = cli.run(&["instances", "ssh", "quiet", "--print"]).await;
    assert!(printed.ok().starts_with("ssh ubuntu@"), "{printed:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_run_twice_with_one_idempotency_key_deploys_once() {
    let server = TestServer::start().await;
    server.fund_operator(100).await;
    let cli = server.barrack();
    import_key(&server, &cli).await;
    let args = deploy_args("once", &["--idempotency-key", "nightly-42", "-o", "json"]);
    let first = cli.run(&args).await.json();
    let second = cli.run(&args).await.json();
    assert_eq!(
        first["instance_id"], second["instance_id"],
        "{first} {second}"
    );
    let other = cli
        .run(&deploy_args("twice", &["--idempotency-key", "nightly-42"]))
        .await;
    assert_ne!(
        other.code, 0,
        "the key was used for another deploy: {other:?}"
    );
    assert!(other.stderr.contains("Idempotency-Key"), "{other:?}");
    let listed = cli.run(&["instances", "list", "-q"]).await;
    assert_eq!(listed.lines().len(), 1, "{listed:?}");
}

/// `deploy --preflight` prints the price and deploys nothing; with `--hold` it prints the hold, which
/// `deploy --hold-id` takes over and `release-hold` gives back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_and_holds_through_the_cli() {
    let server = TestServer::start().await;
    server.fund_operator(100).await;
    let cli = server.barrack();
    let api = server.client();
    import_key(&server, &cli).await;

    let checked = cli
        .run(&deploy_args("planned", &["--preflight", "-o", "json"]))
        .await
        .json();
    assert_eq!(checked["checks"].as_array().unwrap().len(), 6, "{checked}");
    assert!(checked.get("hold").is_none(), "{checked}");
    let text = cli.run(&deploy_args("planned", &["--preflight"])).await;
    assert!(text.ok().contains("USD/hour"), "{text:?}");
    let none = api.instances(&Default::default()).await.unwrap().data;
    assert_eq!(none.pagination.total, 0, "a preflight deploys nothing");

    let held = cli
        .run(&deploy_args("planned", &["--preflight", "--hold", "-q"]))
        .await;
    let hold_id = held.lines()[0].to_string();
    assert!(hold_id.starts_with("hold-"), "{held:?}");
    let deployed = cli
        .run(&deploy_args(
            "planned",
            &["--hold-id", &hold_id, "-o", "json"],
        ))
        .await
        .json();
    assert_eq!(
        deployed["billing"]["total_hourly_rate"], checked["price_per_hour"],
        "{deployed}"
    );

    let spare = cli
        .run(&deploy_args("spare", &["--preflight", "--hold", "-q"]))
        .await;
    let spare = spare.lines()[0].to_string();
    let released = cli.run(&["instances", "release-hold", &spare]).await;
    assert!(released.ok().contains("released"), "{released:?}");
    let twice = cli.run(&["instances", "release-hold", &spare]).await;
    assert_ne!(twice.code, 0, "{twice:?}");
    assert!(twice.stderr.contains("HOLD_ENDED"), "{}", twice.stderr);
    let refused = cli.run(&deploy_args("eager", &["--hold"])).await;
    assert_eq!(refused.code, 2, "--hold needs --preflight: {refused:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_and_leases_through_the_cli() {
    let server = TestServer::start().await;
    server.fund_operator(100).await;
    let cli = server.barrack();
    import_key(&server, &cli).await;
    let ml = cli
        .run(&deploy_args(
            "labelled",
            &[
                "--label",
                "team=ml",
                "--label",
                "env=prod",
                "--ttl",
                "90m",
                "--on-expiry",
                "hibernate",
                "-o",
                "json",
            ],
        ))
        .await
        .json()["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    cli.run(&deploy_args("plain", &["--label", "team=web", "-q"]))
        .await
        .ok();

    let shown = cli
        .run(&["instances", "show", &ml, "-o", "json"])
        .await
        .json();
    assert_eq!(
        shown["labels"],
        serde_json::json!({"env": "prod", "team": "ml"})
    );
    assert_eq!(shown["lease"]["on_expiry"], "hibernate");
    assert_eq!(shown["lease"]["expires_at"], "2025-01-15T12:00:00Z");
    let text = cli.run(&["instances", "show", &ml]).await;
    assert!(text.ok().contains("env=prod, team=ml"), "{text:?}");
    assert!(
        text.ok().contains("hibernate at 2025-01-15T12:00:00Z"),
        "{text:?}"
    );

    // Filters: equality, existence, both.
    let listed = cli
        .run(&["instances", "list", "--label", "team=ml", "-q"])
        .await;
    assert_eq!(listed.lines(), [ml.as_str()], "{listed:?}");
    let listed = cli
        .run(&["instances", "list", "--label", "team", "-q"])
        .await;
    assert_eq!(listed.lines().len(), 2, "{listed:?}");
    let listed = cli
        .run(&[
            "instances",
            "list",
            "--label",
            "team",
            "--label",
            "env",
            "-q",
        ])
        .await;
    assert_eq!(listed.lines(), [ml.as_str()], "{listed:?}");

    // Changed and removed, then the lease moved and ended.
    let changed = cli
        .run(&[
            "instances",
            "labels",
            "labelled",
            "--set",
            "owner=ana",
            "--remove",
            "env",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(
        changed["labels"],
        serde_json::json!({"owner": "ana", "team": "ml"})
    );
    let leased = cli
        .run(&[
            "instances",
            "lease",
            "labelled",
            "--ttl",
            "2h",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(leased["lease"]["expires_at"], "2025-01-15T12:30:00Z");
    assert_eq!(
        leased["lease"]["on_expiry"], "hibernate",
        "a lease moved without --on-expiry keeps its action"
    );
    let ended = cli
        .run(&["instances", "lease", "labelled", "--clear", "-o", "json"])
        .await
        .json();
    assert_eq!(ended["lease"], serde_json::Value::Null);
    // Every example of the help works as written, whatever the date; the limit is said in days.
    let help = cli.run(&["instances", "lease", "--help"]).await;
    assert!(help.ok().contains("at most 366 days"), "{help:?}");
    let examples: Vec<String> = help
        .ok()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("barrack "))
        .map(|example| example.replace(" trainer ", " labelled "))
        .collect();
    assert_eq!(examples.len(), 3, "{help:?}");
    for example in &examples {
        let args: Vec<&str> = example.split_whitespace().collect();
        let run = cli.run(&args).await;
        assert_eq!(run.code, 0, "{example}: {run:?}");
    }
    let too_far = cli
        .run(&[
            "instances",
            "lease",
            "labelled",
            "--expires-at",
            "2026-01-17T00:00:00Z",
        ])
        .await;
    assert_ne!(too_far.code, 0);
    assert!(
        too_far.stderr.contains("within 366 days from now"),
        "{too_far:?}"
    );
    // Nothing to set is a usage error naming the flags, not the API's fields.
    let nothing = cli.run(&["instances", "lease", "labelled"]).await;
    assert_eq!(nothing.code, 2, "{nothing:?}");
    assert!(nothing.stderr.contains("--ttl"), "{nothing:?}");

    // The API's field errors, as for every command.
    let bad = cli
        .run(&["instances", "labels", "labelled", "--set", "Bad=x"])
        .await;
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("labels.Bad"), "{bad:?}");
    let bad = cli
        .run(&["instances", "lease", "labelled", "--ttl", "0m"])
        .await;
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("ttl_minutes"), "{bad:?}");
    let bad = cli
        .run(&["instances", "lease", "labelled", "--ttl", "1w"])
        .await;
    assert_ne!(bad.code, 0, "{bad:?}");
    server.stop().await;
}
