//! The simulation controls through the binary: scenarios applied, listed and removed, and a reset that
//! keeps the operator's key.

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_and_reset() {
    let server = TestServer::start().await;
    let cli = server.barrack();

    let added = cli
        .run(&[
            "admin",
            "add-scenario",
            "--kind",
            "gpu_scarcity",
            "--region",
            "FINLAND-1",
            "--gpu-model",
            "H100-SXM5-80GB",
            "--available",
            "2",
        ])
        .await;
    assert!(
        added
            .ok()
            .contains("2 H100-SXM5-80GB GPUs left in FINLAND-1"),
        "{added:?}"
    );
    let outage = cli
        .run(&[
            "admin",
            "add-scenario",
            "--json",
            r#"{"kind": "region_outage", "region": "CANADA-1"}"#,
            "-q",
        ])
        .await;
    let outage_id = outage.lines()[0].to_string();
    assert!(
        outage_id.starts_with("BRK-") && outage_id.ends_with('E'),
        "{outage:?}"
    );
    let clash = cli
        .run(&[
            "admin",
            "add-scenario",
            "--kind",
            "region_outage",
            "--region",
            "FINLAND-1",
        ])
        .await;
    assert_ne!(clash.code, 0, "stock held twice is refused: {clash:?}");

    let listed = cli.run(&["admin", "scenarios"]).await;
    assert!(listed.ok().contains("CANADA-1 is down"), "{listed:?}");
    assert_eq!(
        cli.run(&["admin", "scenarios", "-q"]).await.lines().len(),
        2
    );
    let json = cli.run(&["admin", "scenarios", "-o", "json"]).await.json();
    let mut kinds: Vec<&str> = json["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["gpu_scarcity", "region_outage"]);

    let removed = cli.run(&["admin", "remove-scenario", &outage_id]).await;
    assert!(removed.ok().starts_with("Removed scenario"), "{removed:?}");
    let again = cli.run(&["admin", "remove-scenario", &outage_id]).await;
    assert_eq!(again.code, 4, "{again:?}");

    let reset = cli.run(&["admin", "reset"]).await;
    assert!(reset.ok().contains("1 operator accounts kept"), "{reset:?}");
    assert_eq!(
        cli.run(&["admin", "scenarios", "-q"]).await.lines().len(),
        0
    );
    assert_eq!(cli.run(&["admin", "users", "-q"]).await.lines().len(), 1);
    server.stop().await;
}
