//! `GET /metrics`: a Prometheus scrape of the real server shows what was asked of it and the state the
//! database holds.

use barrack_api::Tier;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_core::clock::Clock;
use serde_json::json;

use crate::common::{Db, TestApp, deploy_id};
use crate::on_both_databases;

on_both_databases!(
    a_scrape_reports_requests_jobs_instances_pools_and_the_meter,
    a_configured_token_guards_the_scrape,
);

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

async fn scrape(app: &TestApp, token: Option<&str>) -> (u16, String, String) {
    let mut request = crate::common::http_client().get(format!("{}/metrics", app.base_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// The value of the sample whose name and labels are `series`, e.g. `barrack_instances{state="ACTIVE"}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

async fn a_scrape_reports_requests_jobs_instances_pools_and_the_meter(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let key = client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "laptop".into(),
            public_key: None,
        })
        .await
        .unwrap()
        .data
        .key
        .name;
    let request = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "web",
        "image_name": IMAGE, "ssh_key": key, "public_ip": true, "ttl_minutes": 60
    }))
    .unwrap();
    let id = deploy_id(&client, &request).await;

    // Before the workers ran: the deploy's job waits in the queue.
    let (status, content_type, text) = scrape(&app, None).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
    assert_eq!(
        sample(&text, r#"barrack_jobs{kind="instance",status="pending"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, r#"barrack_job_oldest_age_seconds{kind="instance"}"#).is_some());
    assert_eq!(
        sample(&text, r#"barrack_instances{state="CREATING"}"#),
        Some(1.0)
    );

    app.settle().await;
    for _ in 0..3 {
        client.instance(&id).await.unwrap();
    }
    assert_eq!(
        client
            .instance("no-such-instance")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    app.clock.advance_ms(10 * 60_000);
    app.settle().await;

    let (_, _, text) = scrape(&app, None).await;
    // The lease's job waits for its time, not for a worker: it is counted, and nothing is late.
    assert_eq!(
        sample(&text, r#"barrack_jobs{kind="lease",status="pending"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"barrack_job_oldest_age_seconds{kind="lease"}"#),
        Some(0.0),
        "{text}"
    );
    // Requests by route template (an id never makes a series of its own), method and status.
    assert_eq!(
        sample(
            &text,
            r#"barrack_http_requests_total{method="GET",route="/api/instances/{id}/",status="200"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"barrack_http_requests_total{method="GET",route="/api/instances/{id}/",status="404"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"barrack_http_request_duration_seconds_count{method="GET",route="/api/instances/{id}/",status="200"}"#
        ),
        Some(3.0)
    );
    assert!(!text.contains(&id), "no series names an instance");
    assert_eq!(
        sample(
            &text,
            r#"barrack_http_requests_total{method="POST",route="/api/deploy-server/",status="201"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"barrack_instances{state="ACTIVE"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"barrack_jobs{kind="instance",status="pending"}"#),
        None,
        "the queue is empty once the work is done"
    );
    assert_eq!(
        sample(&text, r#"barrack_public_ips_assigned{region="FINLAND-1"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"barrack_public_ip_pool_size{region="FINLAND-1"}"#),
        Some(126.0),
        "FINLAND-1's /25 less its network and broadcast addresses"
    );
    assert!(sample(&text, "barrack_meter_runs_total").unwrap() >= 1.0);
    assert!(sample(&text, "barrack_meter_run_duration_seconds_count").unwrap() >= 1.0);
    assert!(
        sample(&text, "barrack_meter_periods_billed_total").unwrap() >= 1.0,
        "ten minutes of an ACTIVE instance were billed: {text}"
    );
    assert!(sample(&text, "barrack_meter_minutes_billed_total").unwrap() >= 10.0);
    app.stop().await;
}

async fn a_configured_token_guards_the_scrape(db: Db) {
    let app = TestApp::start_with(db, |config| {
        config.metrics.bearer_token = Some("scrape-token-for-tests".into());
    })
    .await;
    let (status, _, _) = scrape(&app, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = scrape(&app, Some("wrong-token")).await;
    assert_eq!(status, 401);
    let (status, _, text) = scrape(&app, Some("scrape-token-for-tests")).await;
    assert_eq!(status, 200);
    assert!(text.contains("barrack_http_requests_total"));
    app.stop().await;
}
