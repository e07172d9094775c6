//! The contract generators rely on: schemathesis fuzzes the served OpenAPI document against the server,
//! a Python client generated from it deploys and deletes an instance, the published docs' schema names
//! are the document's, and the constraints it declares are the validators'.
//!
//! The Python suites run when `BARRACK_TEST_PYTHON=1` and their tools are installed
//! (`scripts/setup/contract.sh`); otherwise they say why they are skipped. How to run them by hand:
//! docs/testing.md.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use barrack_api::Tier;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use serde_json::Value;

use crate::common::{Db, TestApp};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `tool` on the PATH, when the Python suites are asked for; `None` (after saying why) otherwise.
fn python_tool(suite: &str, tool: &str) -> Option<PathBuf> {
    if std::env::var("BARRACK_TEST_PYTHON").as_deref() != Ok("1") {
        crate::common::skipped(
            "python",
            suite,
            "set BARRACK_TEST_PYTHON=1 (and run scripts/setup/contract.sh) to run it",
        );
        return None;
    }
    crate::common::ran("python", suite);
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        // Asked for and not installed: that is a broken setup, not a reason to skip.
        panic!(
            "BARRACK_TEST_PYTHON=1 but `{tool}` is not on the PATH: run scripts/setup/contract.sh"
        );
    }
    found
}

/// A server as `barrackd serve` runs it (workers in the background, the simulator, SQLite, no rate limit),
/// with stock and addresses enough for a fuzzer's deploys, and a completed, funded account of the
/// advanced tier holding the SSH key `laptop` that the documented deploy example names. Returns the server
/// and the account's key.
async fn serving_app() -> (TestApp, String) {
    let app = TestApp::start_serving(Db::Sqlite, |config| {
        for capacity in &mut config.capacity {
            for units in capacity.gpus.values_mut() {
                *units = 100_000;
            }
        }
        // A /16 per region: 65,534 public addresses each.
        for (i, region) in config.regions.iter_mut().enumerate() {
            region.public_ip_pool = format!("100.{}.0.0/16", 64 + i);
        }
    })
    .await;
    let (client, _, key) = app
        .funded_user_with_key(Tier::Advanced, "US", "1000000000")
        .await;
    client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "laptop".into(),
            public_key: None,
        })
        .await
        .expect("create the SSH key laptop");
    (app, key)
}

/// The served document, written to `dir` for the tools.
async fn served_document(app: &TestApp, dir: &Path) -> PathBuf {
    let text = reqwest::get(format!("{}/api/openapi.json", app.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path = dir.join("openapi.json");
    std::fs::write(&path, text).unwrap();
    path
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "barrack-{name}-{}",
        barrack_core::ids::random_alphanumeric(8)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a command to its end without holding up the server that runs on this test's runtime.
async fn run(command: &mut tokio::process::Command) -> (bool, String) {
    let output = command
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("the command starts");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Every check and every phase (examples, coverage, fuzzing, stateful) of schemathesis against the
/// served document reports no failure. New operations are covered as they are added to the document;
/// `scripts/contract/schemathesis.toml` holds the few settings this API needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failures() {
    let Some(st) = python_tool("schemathesis run", "st") else {
        return;
    };
    let (app, key) = serving_app().await;
    let started = Instant::now();
    let scratch = scratch_dir("schemathesis");
    let (ok, report) = run(tokio::process::Command::new(st)
        .current_dir(&scratch)
        .arg("--config-file")
        .arg(Path::new(REPO).join("scripts/contract/schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/api/openapi.json", app.base_url))
        .args(["--header", &format!("X-API-Key: {key}")])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        // One worker: schemathesis's threads parse Python source at once (hypothesis describes its
        // filters from their source), which CPython 3.11.7 can fail with "AST constructor recursion
        // depth mismatch", an error of the interpreter and not of this API.
        .args([
            "--workers",
            "1",
            "--max-examples",
            "25",
            "--seed",
            "20250115",
        ])
        .args(["--no-color", "--output-sanitize", "true"]))
    .await;
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("generated,") || l.contains(" in ") && l.contains("=="))
        .collect();
    eprintln!(
        "schemathesis: {} ({:.0} s)",
        summary.join(" | "),
        started.elapsed().as_secs_f64()
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(ok, "schemathesis reported failures:\n{report}");
}

/// A client generated from the served document with openapi-python-client deploys an instance, sees it
/// ACTIVE, lists it and deletes it (`contract/generated_client.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_deploys_lists_and_deletes() {
    let Some(generator) = python_tool("generated Python client", "openapi-python-client") else {
        return;
    };
    let (app, key) = serving_app().await;
    let dir = scratch_dir("python-client");
    let outcome = async {
        let document = served_document(&app, &dir).await;
        let (ok, output) = run(tokio::process::Command::new(generator)
            .arg("generate")
            .arg("--path")
            .arg(&document)
            .arg("--output-path")
            .arg(dir.join("barrack_client"))
            .args(["--meta", "none"]))
        .await;
        if !ok {
            return Err(format!(
                "openapi-python-client could not generate a client:\n{output}"
            ));
        }
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/contract/generated_client.py");
        let (ok, output) = tokio::time::timeout(
            Duration::from_secs(120),
            run(tokio::process::Command::new("python3")
                .arg(&script)
                .env("PYTHONPATH", &dir)
                .env("BARRACK_URL", &app.base_url)
                .env("BARRACK_API_KEY", &key)),
        )
        .await
        .map_err(|_| "the generated client did not finish in 2 minutes".to_string())?;
        if ok {
            Ok(output)
        } else {
            Err(format!("the generated client failed:\n{output}"))
        }
    }
    .await;
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let output = outcome.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{output}");
    for step in [
        "deployed BRK-",
        "active BRK-",
        "listed BRK-",
        "deleted BRK-",
    ] {
        assert!(output.contains(step), "no '{step}' in:\n{output}");
    }
}

/// Schema names of the published docs (the "Schemas" lists of the AI, account and instance pages, kept in
/// `contract/published_schema_names.txt`) that are not
/// implemented yet. When an operation that answers with one is added, it moves out of this list.
const SEED_SCHEMAS_NOT_YET_IMPLEMENTED: &[(&str, &str)] = &[];

/// Seed schema names the project does not publish, with the reason: the shape is published under
/// another name (named here), or the project has no such thing.
const SEED_SCHEMAS_UNDER_OTHER_NAMES: &[(&str, &str)] = &[
    (
        "Billing",
        "InstanceBillingResponse: instance billing is one flat list, as documented",
    ),
    (
        "CreateAPIKeyRequestTierEnum",
        "TierEnum: a key's tier is a tier",
    ),
    ("CreateSnapshotData", "Snapshot"),
    (
        "Data",
        "no counterpart: a placeholder of the docs' generator; every data object has its own name",
    ),
    ("DeploymentDataStatusEnum", "VMStatus"),
    (
        "FirewallEnvironment",
        "no counterpart: firewalls have no environment",
    ),
    (
        "FirewallRule",
        "SecurityRule: a firewall's rules are the same as an instance's",
    ),
    ("FirewallVM", "FirewallAttachment"),
    (
        "HibernationBillingMetrics",
        "GetHibernatedVMsResponse, which holds the hourly cost",
    ),
    ("InstanceSpecs", "Specs"),
    ("ListUserVMsResponse", "ListVMsResponse"),
    (
        "PatchedDeposit",
        "no counterpart: deposits complete by webhook or operator, never by PATCH",
    ),
    (
        "PatchedTransaction",
        "no counterpart: ledger entries never change",
    ),
    (
        "PaymentMethodEnum",
        "no counterpart: the payment provider is configured, not chosen per deposit",
    ),
    ("PricingRequestVolumeTypeEnum", "VolumeTypeEnum"),
    (
        "RecentHibernation",
        "VMInstance, in GetHibernatedVMsResponse's recent list",
    ),
    (
        "RestoreSnapshotData",
        "DeploymentData, in RestoreSnapshotResponse",
    ),
    (
        "SnapshotBillingSummary",
        "BillingSummary, shared by the billing lists",
    ),
    ("SnapshotDetail", "Snapshot"),
    ("SnapshotListItem", "Snapshot"),
    ("SnapshotVMResponse", "ListVMsForSnapshotResponse"),
    ("SpecsMetadata", "no counterpart: specs carry no metadata"),
    (
        "StatusEnum",
        "each resource's statuses (VMStatus for instances)",
    ),
    ("Tier528Enum", "TierEnum"),
    ("UserVM", "VMInstance"),
    ("VMDetailVolumeAttachment", "VolumeAttachment"),
    ("VMFlavor", "Specs"),
    ("VMImage", "VMInstance.operating_system"),
    ("VMOperations", "VMInstance.allowed_actions"),
    (
        "VMResponse",
        "StartVMResponse, StopVMResponse, RebootVMResponse, HibernateVMResponse, ...",
    ),
    ("VMSecurityRule", "SecurityRule"),
    ("VMSpecs", "Specs"),
    ("VMVolumeAttachment", "VolumeAttachment"),
    (
        "VolumeBillingSummary",
        "BillingSummary, shared by the billing lists",
    ),
    ("VolumeCreateVolumeTypeEnum", "VolumeTypeEnum"),
    ("VolumeRate", "VolumeTypeItem, which carries the rates"),
    (
        "VolumeTypesByTier",
        "GetVolumeTypesResponse, which lists every type with its tier",
    ),
];

/// The schema names of the published docs, kept in `contract/published_schema_names.txt`.
fn published_names() -> Vec<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/contract/published_schema_names.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every schema name of the published docs that the project implements is a schema of `openapi.json`
/// under that name; the others are listed above with the reason.
#[test]
fn published_schema_names_are_the_documents() {
    let seed_names = published_names();
    assert!(seed_names.len() > 150, "{seed_names:?}");
    let doc: Value = serde_json::from_str(&barrack_server::openapi::document_json()).unwrap();
    let published = doc["components"]["schemas"].as_object().unwrap();
    let listed = |name: &str| {
        SEED_SCHEMAS_NOT_YET_IMPLEMENTED
            .iter()
            .chain(SEED_SCHEMAS_UNDER_OTHER_NAMES)
            .any(|(n, _)| *n == name)
    };
    let missing: Vec<&String> = seed_names
        .iter()
        .filter(|n| !published.contains_key(*n) && !listed(n))
        .collect();
    assert!(
        missing.is_empty(),
        "seed schemas neither published under their name nor listed with a reason: {missing:?}"
    );
    for (name, why) in SEED_SCHEMAS_NOT_YET_IMPLEMENTED
        .iter()
        .chain(SEED_SCHEMAS_UNDER_OTHER_NAMES)
    {
        assert!(
            seed_names.iter().any(|n| n == name),
            "{name} is listed but is no seed schema"
        );
        assert!(
            !published.contains_key(*name),
            "{name} is published now: take it out of the list ({why})"
        );
    }
    let matched = seed_names
        .iter()
        .filter(|n| published.contains_key(*n))
        .count();
    eprintln!(
        "{matched} of the {} seed schema names are published under their name",
        seed_names.len()
    );
}
