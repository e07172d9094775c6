//! The catalog in each output form, and an API validation error.

use reqwest::Method;
use serde_json::Value;

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_prints_tables_ids_and_the_apis_json() {
    let server = TestServer::start().await;
    let cli = server.barrack();
    let api = server.client();

    let regions = cli.run(&["catalog", "regions"]).await;
    let table = regions.ok();
    assert!(table.starts_with("NAME "), "{table}");
    assert!(table.contains("CANADA-1") && table.contains("FINLAND-1"));

    assert_eq!(
        cli.run(&["catalog", "regions", "--tier", "legacy", "-q"])
            .await
            .lines(),
        ["CANADA-1"]
    );

    for (command, path) in [
        ("regions", "/api/regions/"),
        ("gpus", "/api/gpu-specs/"),
        ("stock", "/api/gpu-stocks/"),
        ("images", "/api/os-images/"),
    ] {
        let printed = cli.run(&["catalog", command, "-o", "json"]).await.json();
        let answer = api.raw(Method::GET, path, None).await.unwrap().body;
        assert_eq!(printed, answer["data"], "barrack catalog {command} -o json");
    }

    // Pricing is flat: the whole body, less the per-request id.
    let without_id = |mut body: Value| {
        body.as_object_mut().unwrap().remove("request_id");
        body
    };
    let printed = cli.run(&["-o", "json", "catalog", "pricing"]).await.json();
    let answer = api.raw(Method::GET, "/api/pricing/", None).await.unwrap();
    assert_eq!(without_id(printed), without_id(answer.body));

    let quote = cli
        .run(&[
            "catalog",
            "quote",
            "--gpu-model",
            "H100-SXM5-80GB",
            "--gpu-count",
            "4",
        ])
        .await;
    assert!(quote.ok().contains("9.96 USD"), "{quote:?}");
    let quote = cli
        .run(&[
            "catalog",
            "quote",
            "--volume-type",
            "NVMe",
            "--size",
            "100",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(quote["pricing_data"]["quote"]["hourly_rate"], 0.0293);

    let bad = cli
        .run(&[
            "catalog",
            "quote",
            "--gpu-model",
            "GTX-1080",
            "--gpu-count",
            "1",
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

    let usage = cli.run(&["catalog", "quote", "--gpu-model", "L40"]).await;
    assert_eq!(usage.code, 2, "--gpu-count is required with --gpu-model");

    let health = cli.run(&["health"]).await;
    assert!(health.ok().contains("status ok"), "{health:?}");
    server.stop().await;
}
