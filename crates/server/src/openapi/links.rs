//! Links from the operations that create a resource to the operations on it, so that clients and tools
//! (schemathesis's stateful phase among them) know that the id in a 201 answer is what the resource's
//! paths take.

use serde_json::{Map, Value, json};

use super::escape;

/// (the creating operation's path, its method, its success status, where the new id is in the answer,
/// the path the resource's operations start with).
const CREATES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "/api/deploy-server/",
        "post",
        "201",
        "/data/instance_id",
        "/api/instances/{id}/",
    ),
    (
        "/api/snapshots/{id}/restore/",
        "post",
        "201",
        "/data/instance_id",
        "/api/instances/{id}/",
    ),
    (
        "/api/volumes/",
        "post",
        "201",
        "/data/id",
        "/api/volumes/{id}/",
    ),
    (
        "/api/volumes/{id}/clone/",
        "post",
        "201",
        "/data/id",
        "/api/volumes/{id}/",
    ),
    (
        "/api/firewalls/",
        "post",
        "201",
        "/data/id",
        "/api/firewalls/{id}/",
    ),
    (
        "/api/snapshots/",
        "post",
        "201",
        "/data/id",
        "/api/snapshots/{id}/",
    ),
    (
        "/api/images/",
        "post",
        "201",
        "/data/id",
        "/api/images/{id}/",
    ),
    (
        "/api/ssh-keys/",
        "post",
        "201",
        "/data/id",
        "/api/ssh-keys/{id}/",
    ),
    (
        "/api/scripts/",
        "post",
        "201",
        "/data/id",
        "/api/scripts/{id}/",
    ),
    (
        "/api/api-keys/",
        "post",
        "201",
        "/data/id",
        "/api/api-keys/{id}/",
    ),
    (
        "/api/deposits/",
        "post",
        "201",
        "/data/id",
        "/api/deposits/{id}/",
    ),
];

/// Rules created under a resource: the resource's id comes from the request's path.
const NESTED: &[(&str, &str)] = &[
    (
        "/api/instances/{id}/security-rules/",
        "/api/instances/{id}/security-rules/{rule_id}/",
    ),
    (
        "/api/firewalls/{id}/rules/",
        "/api/firewalls/{id}/rules/{rule_id}/",
    ),
];

pub(super) fn apply(doc: &mut Value) {
    let targets: Vec<(String, String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .iter()
                .filter_map(|(method, op)| {
                    op["operationId"]
                        .as_str()
                        .map(|id| (path.clone(), method.clone(), id.to_string()))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for (create, method, status, pointer, prefix) in CREATES {
        let mut links = Map::new();
        for (path, _, operation) in &targets {
            // The resource's own operations: its path and those below it that take no other id.
            if path.starts_with(prefix) && path.matches('{').count() == 1 {
                links.insert(
                    operation.clone(),
                    json!({"operationId": operation, "parameters": {"id": format!("$response.body#{pointer}")}}),
                );
            }
        }
        add(doc, create, method, status, links);
    }
    for (create, rule_path) in NESTED {
        let mut links = Map::new();
        for (_, _, operation) in targets.iter().filter(|(p, _, _)| p == rule_path) {
            links.insert(
                operation.clone(),
                json!({"operationId": operation, "parameters": {
                    "id": "$request.path.id", "rule_id": "$response.body#/data/id"}}),
            );
        }
        add(doc, create, "post", "201", links);
    }
}

fn add(doc: &mut Value, path: &str, method: &str, status: &str, links: Map<String, Value>) {
    let pointer = format!("/paths/{}/{method}/responses/{status}", escape(path));
    let response = doc
        .pointer_mut(&pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no response at {pointer}"));
    assert!(!links.is_empty(), "no operations to link {path} to");
    response.insert("links".into(), Value::Object(links));
}
