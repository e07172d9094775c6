//! Every error an operation can answer, in the error envelope, with its codes: what the annotations of
//! the handlers leave out because every operation of a kind shares it (401 wherever credentials are read,
//! 400 everywhere (every operation refuses a query parameter it does not take), 413 wherever a body is
//! read (every operation but a `GET`: those that take none read it to refuse one), 404 wherever a path names a resource, 429 and 500 everywhere).

use serde_json::{Value, json};

use super::operations;

/// The description of each error status, naming its codes (`docs/api-design.md`).
pub const ERROR_STATUSES: &[(u16, &str)] = &[
    (
        400,
        "Invalid request data (`VALIDATION_ERROR`): `errors` maps each field at fault to its messages",
    ),
    (401, "No valid API key or token (`AUTHENTICATION_FAILED`)"),
    (402, "Not enough credit (`INSUFFICIENT_BALANCE`)"),
    (
        403,
        "Not allowed (`FORBIDDEN`), or the billing profile is incomplete (`PROFILE_INCOMPLETE`)",
    ),
    (
        404,
        "Not found (`NOT_FOUND`); another account's resources are not found either",
    ),
    (
        409,
        "Conflict: `CONFLICT`, `DUPLICATE_NAME`, `DUPLICATE_RULE`, `RESOURCE_IN_USE`, `INVALID_STATE` or \
         `LIMIT_EXCEEDED`; `IDEMPOTENCY_IN_PROGRESS` (with `Retry-After`) while a request with the same \
         `Idempotency-Key` is still running",
    ),
    (413, "Request too large (`PAYLOAD_TOO_LARGE`)"),
    (
        422,
        "The `Idempotency-Key` was used with a different request (`IDEMPOTENCY_MISMATCH`)",
    ),
    (
        429,
        "Too many requests (`RATE_LIMITED`): retry after `Retry-After` seconds",
    ),
    (
        500,
        "Internal error (`INTERNAL_ERROR`); the details are logged under the request id",
    ),
    (
        503,
        "Not enough GPU stock (`GPU_UNAVAILABLE`, naming where there is) or public addresses \
         (`PUBLIC_IP_UNAVAILABLE`), the region is down (`REGION_UNAVAILABLE`), or the database cannot \
         be reached (`SERVICE_UNAVAILABLE`): try again later",
    ),
];

pub(super) fn apply(doc: &mut Value) {
    for (path, method, op) in operations(doc) {
        let secured = op["security"].as_array().is_some_and(|reqs| {
            reqs.iter()
                .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        });
        // Every operation refuses a query parameter it does not take, and answers 503 while the
        // database cannot be reached; every one but a `GET` reads a body, those that take none to
        // refuse one.
        let mut statuses = vec![400, 429, 500, 503];
        if method != "get" {
            statuses.push(413);
        }
        if secured {
            statuses.push(401);
        }
        if path.contains('{') {
            statuses.push(404);
        }
        if path.starts_with("/api/admin/") {
            statuses.push(403);
        }
        if method == "post" && secured && crate::http::idempotency::applies(&path) {
            // A malformed key is a 400 on `Idempotency-Key`.
            statuses.extend([400, 409, 422]);
            let parameters = op
                .as_object_mut()
                .expect("an operation")
                .entry("parameters")
                .or_insert_with(|| json!([]));
            if let Some(list) = parameters.as_array_mut() {
                list.push(idempotency_key_parameter());
            }
        }
        let responses = op["responses"].as_object_mut().expect("responses");
        for status in statuses {
            responses
                .entry(status.to_string())
                .or_insert_with(|| json!({}));
        }
        for (status, response) in responses.iter_mut() {
            let Ok(status) = status.parse::<u16>() else {
                continue;
            };
            let Some((_, description)) = ERROR_STATUSES.iter().find(|(s, _)| *s == status) else {
                continue;
            };
            let response = response.as_object_mut().expect("a response");
            response.insert("description".into(), json!(description));
            response.insert(
                "content".into(),
                json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}),
            );
            if status == 429 {
                response.insert("headers".into(), rate_limit_headers());
            }
        }
        // Statuses in order, as people read them.
        let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        responses.extend(sorted);
    }
}

/// `Retry-After` comes with every 429; the `RateLimit-*` headers come from the per-caller request limit
/// (`[rate_limit]`), so a 429 of another limit (failed logins, AI concurrency) or a server with that limit
/// off answers without them.
fn rate_limit_headers() -> Value {
    let integer = |required: bool, description: &str| json!({"required": required, "description": description, "schema": {"type": "integer", "minimum": 0}});
    json!({
        "Retry-After": integer(true, "Seconds until a request is allowed again"),
        "RateLimit-Limit": integer(false, "Requests allowed in a window, when the request rate limit is on"),
        "RateLimit-Remaining": integer(false, "Requests left now, when the request rate limit is on"),
        "RateLimit-Reset": integer(false, "Seconds until the allowance is full again, when the request rate limit is on"),
    })
}

/// The optional `Idempotency-Key` of POSTs that create or change something (`docs/api-design.md`).
fn idempotency_key_parameter() -> Value {
    json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "Makes retries safe: the first request with this key (per account) runs once and its \
            response is kept for 24 hours; a retry with the same key and body gets the same status and body \
            back (with `Idempotent-Replayed: true`); the same key with another body is 422 \
            `IDEMPOTENCY_MISMATCH`; a retry while the first still runs is 409 `IDEMPOTENCY_IN_PROGRESS`.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}
    })
}
