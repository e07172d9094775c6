//! The CLI keeps up with the API: every operation in the server's OpenAPI document has a command, and
//! the table mapping them names only real operations and real commands. Also: completions.

use std::collections::BTreeMap;

use barrack_cli::OPERATIONS;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Operations people do not call, so no command calls them: payment providers post the deposit webhook,
/// authenticated by a signature over its body rather than by an API key; orchestrators probe liveness
/// (`barrack health` asks the readiness path).
const NOT_FOR_PEOPLE: &[&str] = &["deposit_webhook", "liveness"];

#[test]
fn every_api_operation_has_a_command() {
    let doc: Value = serde_json::from_str(&barrack_server::openapi::document_json()).unwrap();
    let mut api = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let id = op["operationId"].as_str().expect("operations have ids");
                api.insert(id.to_string(), (method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(!api.is_empty());

    let tree = barrack_cli::command();
    let mut problems = Vec::new();
    for id in NOT_FOR_PEOPLE {
        if !api.contains_key(*id) {
            problems.push(format!(
                "NOT_FOR_PEOPLE names {id}, which the API does not have"
            ));
        }
    }
    for (id, (method, path)) in &api {
        if NOT_FOR_PEOPLE.contains(&id.as_str()) {
            continue;
        }
        if !OPERATIONS.iter().any(|op| op.id == id) {
            problems.push(format!(
                "{id} ({method} {path}) has no command: add one and a row to OPERATIONS"
            ));
        }
    }
    // An operation may have several rows, one per command that calls it; each must say it right.
    for op in OPERATIONS {
        match api.get(op.id) {
            None => problems.push(format!(
                "OPERATIONS names {}, which the API does not have",
                op.id
            )),
            Some((method, path)) if (op.method, op.path) != (method.as_str(), path.as_str()) => {
                problems.push(format!(
                    "{} is {method} {path}, OPERATIONS says {} {} for `barrack {}`",
                    op.id, op.method, op.path, op.command
                ))
            }
            Some(_) => {}
        }
        let mut command = &tree;
        for name in op.command_path() {
            match command.find_subcommand(name) {
                Some(sub) => command = sub,
                None => {
                    problems.push(format!("{}: no command `barrack {}`", op.id, op.command));
                    break;
                }
            }
        }
        for flag in op.flags() {
            if !command.get_arguments().any(|a| a.get_long() == Some(flag)) {
                problems.push(format!(
                    "{}: `barrack {}` has no --{flag}",
                    op.id, op.command
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn completions_cover_the_command_tree() {
    let cli = crate::common::Barrack::default();
    for shell in ["bash", "zsh", "fish"] {
        let script = cli.run(&["completions", shell]).await;
        let text = script.ok();
        assert!(
            text.contains("barrack")
                && text.contains("api-keys")
                && text.contains("grant-credits")
                && text.contains("snapshot-eligible"),
            "{shell} completions"
        );
    }
    assert_eq!(cli.run(&["completions", "tcsh"]).await.code, 2);
    assert_eq!(cli.run(&[]).await.code, 2);
}
