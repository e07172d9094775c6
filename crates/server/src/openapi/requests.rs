//! What the server accepts, declared on each request field from the constants the validators use
//! (`barrack_api::rules`, the services' limits) and from the running configuration's catalog (GPU models,
//! regions, volume types, volume sizes), so the document and the validators cannot drift apart. Rules that
//! tie fields together (a model's GPU counts, the caller's tier, a port range's order) are written in the
//! field descriptions; the validators answer 400 naming the field.

use barrack_api::PageRequest;
use barrack_api::rules;
use barrack_core::config::Config;
use serde_json::{Value, json};

use super::{escape, operations, set};

const SCHEMAS: &str = "#/components/schemas/";

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMAS}{name}") })
}

/// `null`, or the schema.
fn nullable(schema: Value) -> Value {
    json!({ "oneOf": [{"type": "null"}, schema] })
}

fn prop(schema: &str, field: &str) -> String {
    format!("/components/schemas/{schema}/properties/{field}")
}

/// Replaces a property's schema, keeping its description.
fn replace(doc: &mut Value, schema: &str, field: &str, mut new: Value) {
    let pointer = prop(schema, field);
    let old = doc
        .pointer_mut(&pointer)
        .unwrap_or_else(|| panic!("no property {schema}.{field}"));
    if let Some(description) = old.get("description").cloned() {
        new["description"] = description;
    }
    *old = new;
}

fn label(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": rules::LABEL_PATTERN})
}

fn instance_name() -> Value {
    json!({
        "type": "string",
        "minLength": rules::INSTANCE_NAME_MIN_CHARS,
        "maxLength": rules::INSTANCE_NAME_MAX_CHARS,
        "pattern": rules::INSTANCE_NAME_PATTERN,
    })
}

/// A list of ids: at least one, at most `max`; for changes, none empty and none twice (lookups report
/// what they do not find).
fn ids(max: usize, change: bool) -> Value {
    let mut list =
        json!({"type": "array", "minItems": 1, "maxItems": max, "items": {"type": "string"}});
    if change {
        list["uniqueItems"] = json!(true);
        list["items"]["minLength"] = json!(1);
    }
    list
}

/// An optional list: `null` and `[]` both mean none.
fn optional_list(items: Value, max: Option<usize>) -> Value {
    let mut list = json!({"type": ["array", "null"], "items": items});
    if let Some(max) = max {
        list["maxItems"] = json!(max);
    }
    list
}

fn optional_bool() -> Value {
    json!({"type": ["boolean", "null"]})
}

/// An optional enumeration: `null`, `""` (absent) or one of the values.
fn optional_enum(name: &str) -> Value {
    json!({"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 0}, reference(name)]})
}

pub(super) fn apply(doc: &mut Value, config: &Config) {
    catalog_enums(doc, config);
    fixed_enums(doc);
    for s in ["DeploymentData", "VMInstance"] {
        replace(doc, s, "status", reference("VMStatus"));
        replace(doc, s, "ip_status", reference("IpStatusEnum"));
        replace(doc, s, "boot_source", reference("BootSourceEnum"));
    }
    deploy(doc, config);
    leases_and_chat(doc);
    security_rules(doc);
    volumes(doc, config);
    names_and_lists(doc);
    pricing(doc, config);
    accounts_and_operators(doc);
    null_or_absent(doc);
    queries(doc, config);
    bodies_required_only_with_required_fields(doc);
    examples(doc);
}

/// Enumerations filled from the configuration's catalog.
fn catalog_enums(doc: &mut Value, config: &Config) {
    let names = |items: Vec<&String>| -> Value { json!(items) };
    let schemas = doc["components"]["schemas"].as_object_mut().unwrap();
    schemas.insert(
        "GpuModelEnum".into(),
        json!({"type": "string", "description": "A GPU model of the catalog (each belongs to one tier).",
               "enum": names(config.gpu_models.iter().map(|m| &m.name).collect())}),
    );
    schemas.insert(
        "RegionEnum".into(),
        json!({"type": "string", "description": "A region of the catalog (each belongs to one tier).",
               "enum": names(config.regions.iter().map(|r| &r.name).collect())}),
    );
    schemas.insert(
        "VolumeTypeEnum".into(),
        json!({"type": "string", "description": "A volume type of the catalog (each belongs to one tier).",
               "enum": names(config.volume_types.iter().map(|t| &t.name).collect())}),
    );
    schemas.insert(
        "GpuCountEnum".into(),
        json!({"type": "integer", "description": "GPUs per instance; each model allows those up to its `max_count`.",
               "enum": rules::GPU_COUNTS}),
    );
}

/// Enumerations of the API itself.
fn fixed_enums(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].as_object_mut().unwrap();
    schemas.insert(
        "DirectionEnum".into(),
        json!({"type": "string", "enum": ["ingress", "egress"]}),
    );
    schemas.insert(
        "EthertypeEnum".into(),
        json!({"type": "string", "enum": ["IPv4", "IPv6"]}),
    );
    schemas.insert(
        "BootSourceEnum".into(),
        json!({"type": "string", "enum": ["image", "volume", "snapshot"]}),
    );
    schemas.insert(
        "IpStatusEnum".into(),
        json!({"type": "string", "description": "`pending` until the instance has its address, then `assigned`.",
               "enum": ["pending", "assigned"]}),
    );
    schemas.insert(
        "VMStatus".into(),
        json!({"type": "string", "description": "The instance lifecycle (`docs/api-design.md`).",
               "enum": barrack_core::lifecycle::InstanceState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()}),
    );
    schemas.insert(
        "ProtocolEnum".into(),
        json!({"type": "string", "description": "IP protocols rules take by name (`GET /api/firewalls/protocols/`); `any` matches every protocol.",
               "enum": barrack_core::network::PROTOCOLS.iter().map(|(name, _)| *name).chain(["any"]).collect::<Vec<_>>()}),
    );
}

fn deploy(doc: &mut Value, config: &Config) {
    let s = "DeploymentRequest";
    replace(doc, s, "gpu_model", reference("GpuModelEnum"));
    replace(doc, s, "gpu_count", reference("GpuCountEnum"));
    replace(doc, s, "region", reference("RegionEnum"));
    replace(doc, s, "instance_name", instance_name());
    replace(doc, s, "boot_from_volume", optional_bool());
    replace(doc, s, "public_ip", optional_bool());
    replace(
        doc,
        s,
        "security_rules",
        optional_list(
            reference("VMSecurityRuleRequest"),
            Some(barrack_core::instances::MAX_RULES_PER_INSTANCE),
        ),
    );
    replace(
        doc,
        s,
        "cloud_init",
        json!({"type": ["string", "null"], "maxLength": barrack_core::instances::MAX_CLOUD_INIT_BYTES}),
    );
    replace(
        doc,
        s,
        "existing_volumes",
        optional_list(
            json!({"type": "string", "minLength": 1}),
            Some(barrack_core::volumes::MAX_VOLUMES_PER_REQUEST),
        ),
    );
    set(
        doc,
        &prop(s, "existing_volumes"),
        json!({"uniqueItems": true}),
    );
    replace(
        doc,
        s,
        "volumes",
        optional_list(reference("VolumeCreate"), None),
    );
    replace(doc, s, "os_volume", nullable(reference("OsVolume")));
    let limits = &config.volumes;
    set(
        doc,
        &prop("OsVolume", "size"),
        json!({"minimum": limits.minimum_bootable_size_gb, "maximum": limits.maximum_size_gb}),
    );
    replace(doc, "VolumeCreate", "name", label(rules::LABEL_MAX_CHARS));
    set(
        doc,
        &prop("VolumeCreate", "size"),
        json!({"minimum": limits.minimum_size_gb, "maximum": limits.maximum_size_gb}),
    );
    replace(
        doc,
        "VolumeCreate",
        "volume_type",
        reference("VolumeTypeEnum"),
    );
    let s = "RestoreSnapshotRequest";
    let mut name = instance_name();
    name["type"] = json!(["string", "null"]);
    name["minLength"] = json!(0);
    name["pattern"] = json!(format!(
        "^$|^[A-Za-z0-9._-]{{{},}}$",
        rules::INSTANCE_NAME_MIN_CHARS
    ));
    replace(doc, s, "instance_name", name);
}

/// A lease's length within the longest lease and its action among those the server knows; the chat's
/// token counts and choices as the service checks them.
fn leases_and_chat(doc: &mut Value) {
    doc["components"]["schemas"]
        .as_object_mut()
        .unwrap()
        .insert(
            "LeaseActionEnum".into(),
            json!({"type": "string", "enum": ["delete", "hibernate"]}),
        );
    for s in ["DeploymentRequest", "InstancePatch"] {
        set(
            doc,
            &prop(s, "ttl_minutes"),
            json!({"minimum": 1, "maximum": barrack_api::labels::MAX_LEASE_MINUTES}),
        );
        replace(doc, s, "on_expiry", optional_enum("LeaseActionEnum"));
    }
    replace(doc, "Lease", "on_expiry", reference("LeaseActionEnum"));
    let s = "ChatCompletionsRequest";
    for field in ["max_tokens", "max_completion_tokens"] {
        set(doc, &prop(s, field), json!({"minimum": 1}));
    }
    set(doc, &prop(s, "n"), json!({"minimum": 1, "maximum": 1}));
}

fn security_rules(doc: &mut Value) {
    for s in ["VMSecurityRuleRequest", "AddFirewallRuleRequest"] {
        replace(doc, s, "direction", reference("DirectionEnum"));
        replace(doc, s, "ethertype", optional_enum("EthertypeEnum"));
        replace(
            doc,
            s,
            "protocol",
            json!({"anyOf": [
                {"type": "null"},
                {"type": "string", "maxLength": 0},
                reference("ProtocolEnum"),
                {"type": "string", "pattern": "^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"},
            ]}),
        );
        for port in ["port_range_min", "port_range_max"] {
            set(
                doc,
                &prop(s, port),
                json!({"minimum": rules::PORT_MIN, "maximum": rules::PORT_MAX,
                       "description": "Both port bounds or neither; only for port protocols (tcp, udp, sctp, dccp, udplite); min ≤ max."}),
            );
        }
        set(
            doc,
            &prop(s, "remote_ip_prefix"),
            json!({"description": "CIDR of the ethertype's family with no host bits set, such as `203.0.113.0/24`; absent, `null` or `\"\"` means anywhere."}),
        );
    }
}

fn volumes(doc: &mut Value, config: &Config) {
    let limits = &config.volumes;
    let s = "CreateVolumeRequest";
    replace(doc, s, "name", label(rules::LABEL_MAX_CHARS));
    set(
        doc,
        &prop(s, "size"),
        json!({"minimum": limits.minimum_size_gb, "maximum": limits.maximum_size_gb}),
    );
    replace(doc, s, "region", reference("RegionEnum"));
    replace(doc, s, "volume_type", reference("VolumeTypeEnum"));
    replace(doc, s, "bootable", optional_bool());
    set(
        doc,
        &prop("ResizeVolumeRequest", "size"),
        json!({"minimum": limits.minimum_size_gb, "maximum": limits.maximum_size_gb}),
    );
    replace(
        doc,
        "CloneVolumeRequest",
        "name",
        label(rules::LABEL_MAX_CHARS),
    );
    for s in ["AttachVolumesRequest", "DetachVolumesRequest"] {
        replace(
            doc,
            s,
            "volume_ids",
            ids(barrack_core::volumes::MAX_VOLUMES_PER_REQUEST, true),
        );
    }
}

fn names_and_lists(doc: &mut Value) {
    for s in ["CreateScriptRequest", "UpdateScriptRequest"] {
        replace(doc, s, "name", label(rules::SCRIPT_NAME_MAX_CHARS));
        replace(
            doc,
            s,
            "script",
            json!({"type": "string", "minLength": 1, "maxLength": rules::SCRIPT_MAX_BYTES, "pattern": rules::SCRIPT_PATTERN}),
        );
    }
    replace(
        doc,
        "CreateSSHKeyRequest",
        "name",
        json!({"type": "string", "minLength": 1, "maxLength": rules::LABEL_MAX_CHARS, "pattern": rules::SSH_KEY_NAME_PATTERN}),
    );
    replace(
        doc,
        "CreateAPIKeyRequest",
        "name",
        label(rules::LABEL_MAX_CHARS),
    );
    let description =
        json!({"type": ["string", "null"], "maxLength": rules::DESCRIPTION_MAX_CHARS});
    for s in [
        "CreateFirewallRequest",
        "CreateSnapshotRequest",
        "CreateImageFromSnapshotRequest",
    ] {
        replace(doc, s, "name", label(rules::LABEL_MAX_CHARS));
        replace(doc, s, "description", description.clone());
    }
    replace(
        doc,
        "CreateFirewallRequest",
        "region",
        reference("RegionEnum"),
    );
    replace(
        doc,
        "CreateFirewallRequest",
        "rules",
        optional_list(
            reference("VMSecurityRuleRequest"),
            Some(barrack_core::firewalls::MAX_RULES_PER_FIREWALL),
        ),
    );
    replace(doc, "CreateSnapshotRequest", "is_image", optional_bool());
    for (s, id) in [
        ("CreateSnapshotRequest", "instance_id"),
        ("CreateImageFromSnapshotRequest", "snapshot_id"),
    ] {
        set(doc, &prop(s, id), json!({"minLength": 1}));
    }
    replace(
        doc,
        "AttachFirewallRequest",
        "instance_ids",
        ids(barrack_core::firewalls::MAX_INSTANCES_PER_REQUEST, true),
    );
    replace(
        doc,
        "GetBatchSnapshotImageRelationshipsRequest",
        "snapshot_ids",
        ids(barrack_core::images::MAX_RELATIONSHIP_IDS, false),
    );
    replace(
        doc,
        "DeleteScriptsRequest",
        "script_ids",
        ids(rules::MAX_IDS_PER_BULK, false),
    );
}

fn pricing(doc: &mut Value, config: &Config) {
    let s = "PricingRequest";
    replace(doc, s, "gpu_model", optional_enum("GpuModelEnum"));
    replace(doc, s, "gpu_count", nullable(reference("GpuCountEnum")));
    replace(doc, s, "volume_type", optional_enum("VolumeTypeEnum"));
    set(
        doc,
        &prop(s, "volume_size_gb"),
        json!({"minimum": config.volumes.minimum_size_gb, "maximum": config.volumes.maximum_size_gb}),
    );
}

fn accounts_and_operators(doc: &mut Value) {
    use barrack_core::accounts::{PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS};
    for s in ["RegisterRequest", "AdminCreateUser"] {
        set(
            doc,
            &prop(s, "password"),
            json!({"minLength": PASSWORD_MIN_CHARS, "maxLength": PASSWORD_MAX_CHARS}),
        );
    }
    replace(doc, "AdminCreateUser", "admin", optional_bool());
    set(
        doc,
        &prop("AdvanceClock", "minutes"),
        json!({"minimum": 1, "maximum": barrack_core::simulation::MAX_MINUTES}),
    );
    set(
        doc,
        &prop("CapacitySetting", "total"),
        json!({"maximum": barrack_core::catalog::MAX_CAPACITY_UNITS}),
    );
    replace(doc, "CapacitySetting", "region", reference("RegionEnum"));
    replace(
        doc,
        "CapacitySetting",
        "gpu_model",
        reference("GpuModelEnum"),
    );
}

/// Members the server reads as absent when `null` (and amounts it takes as numbers too), declared so
/// that clients generated from the document may send them so.
fn null_or_absent(doc: &mut Value) {
    for s in [
        "DeploymentRequest",
        "CreateVolumeRequest",
        "CreateFirewallRequest",
        "CreateSnapshotRequest",
        "CreateImageFromSnapshotRequest",
    ] {
        replace(doc, s, "labels", nullable(reference("BTreeMap")));
    }
    replace(
        doc,
        "CreateWebhookRequest",
        "event_types",
        optional_list(json!({"type": "string"}), None),
    );
    for s in ["CreateDepositRequest", "GrantCredits"] {
        let pointer = prop(s, "amount");
        let amount = doc
            .pointer_mut(&pointer)
            .unwrap_or_else(|| panic!("no property {s}.amount"));
        amount["type"] = json!(["string", "number"]);
    }
}

/// Query parameters, by name: every list's page, filters the lists check, and the catalog's filters. An
/// empty value is an absent parameter.
fn queries(doc: &mut Value, config: &Config) {
    use barrack_core::images::ImageState;
    use barrack_core::lifecycle::InstanceState;
    use barrack_core::snapshots::SnapshotState;
    use barrack_core::volumes::VolumeState;
    let states = |names: Vec<&str>| json!({"type": "string", "enum": names});
    for (path, _method, op) in operations(doc) {
        let catalog = [
            "/api/regions/",
            "/api/gpu-specs/",
            "/api/gpu-stocks/",
            "/api/os-images/",
            "/api/pricing/",
        ]
        .contains(&path.as_str());
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for param in params.iter_mut().filter(|p| p["in"] == "query") {
            let schema = match (param["name"].as_str().unwrap_or(""), path.as_str()) {
                ("page", _) => {
                    json!({"type": "integer", "minimum": 1, "maximum": u32::MAX, "default": 1})
                }
                ("limit", _) => {
                    json!({"type": "integer", "minimum": 1, "maximum": PageRequest::MAX_LIMIT,
                                       "default": PageRequest::DEFAULT_LIMIT})
                }
                ("tier", _) => reference("TierEnum"),
                ("currency", _) => reference("CurrencyEnum"),
                ("resource_type", _) => reference("ResourceTypeEnum"),
                ("type", "/api/transactions/") => reference("TransactionTypeEnum"),
                ("from" | "to", _) => json!({"type": "string", "format": "date-time"}),
                // The pricing query is the pricing body: `""` is absent there too.
                ("gpu_model", "/api/pricing/") => optional_enum("GpuModelEnum"),
                ("volume_type", "/api/pricing/") => optional_enum("VolumeTypeEnum"),
                ("gpu_count", "/api/pricing/") => reference("GpuCountEnum"),
                ("volume_size_gb", "/api/pricing/") => json!({"type": "integer",
                    "minimum": config.volumes.minimum_size_gb, "maximum": config.volumes.maximum_size_gb}),
                ("region", _) if catalog => reference("RegionEnum"),
                ("gpu_model", _) if catalog => reference("GpuModelEnum"),
                // Deleted instances are never listed, so the filter refuses DELETED.
                ("status", "/api/instances/") => states(
                    InstanceState::ALL
                        .iter()
                        .filter(|s| **s != InstanceState::Deleted)
                        .map(|s| s.as_str())
                        .chain(["BUILD"])
                        .collect(),
                ),
                ("status", "/api/volumes/") => {
                    states(VolumeState::ALL.iter().map(|s| s.as_str()).collect())
                }
                ("status", "/api/snapshots/") => {
                    states(SnapshotState::ALL.iter().map(|s| s.as_str()).collect())
                }
                ("status", "/api/images/") => {
                    states(ImageState::ALL.iter().map(|s| s.as_str()).collect())
                }
                _ => continue,
            };
            param["schema"] = schema;
        }
    }
}

/// A body whose fields are all optional may be left out (the server reads no body as `{}`).
fn bodies_required_only_with_required_fields(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].clone();
    for (_path, _method, op) in operations(doc) {
        let Some(body) = op.get_mut("requestBody") else {
            continue;
        };
        let schema = &body["content"]["application/json"]["schema"];
        let name = schema["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix(SCHEMAS));
        let required = match name {
            Some(name) => schemas[name]["required"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            None => true,
        };
        body["required"] = json!(required);
    }
}

/// The documented deploy request and answer, and the scripts 400.
fn examples(doc: &mut Value) {
    let deploy = format!("/paths/{}/post", escape("/api/deploy-server/"));
    set(
        doc,
        &format!("{deploy}/requestBody/content/application~1json"),
        json!({"example": {
            "gpu_model": "H100-SXM5-80GB", "gpu_count": 4, "region": "FINLAND-1",
            "instance_name": "trainer", "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
            "volume_id": null, "boot_from_volume": false, "ssh_key": "laptop", "public_ip": true,
            "security_rules": [{"direction": "ingress", "protocol": "tcp", "ethertype": "IPv4",
                                "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}],
            "cloud_init": null, "os_volume": {"size": 100}, "existing_volumes": [], "volumes": [],
            "script_id": null
        }}),
    );
    set(
        doc,
        &format!("{deploy}/responses/201/content/application~1json"),
        json!({"example": {
            "success": true, "message": "VM deployed successfully", "request_id": "a1b2c3d4",
            "timestamp": "2025-01-15T10:30:00Z",
            "data": {
                "instance_id": "BRK-A1B2C3D", "vm_name": "barrack-h100s-xyz", "region": "FINLAND-1",
                "ip_address": null, "ip_status": "pending",
                "billing": {
                    "breakdown": {
                        "compute": {"gpu": {"model": "H100-SXM5-80GB", "count": 4, "hourly_rate": 9.96}},
                        "storage": {"os_volume": {"size_gb": 100, "type": "NVMe", "hourly_rate": 0.0293},
                                    "data_volumes": [], "data_volumes_total": 0}
                    },
                    "total_hourly_rate": 9.9893, "currency": "USD"
                },
                "specs": {"gpu_type": "H100-SXM5-80GB", "gpu_count": 4, "ram_gb": 740, "vcpus": 176, "storage_gb": 100},
                "status": "CREATING", "boot_source": "image",
                "operating_system": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
                "features": {"startup_script_configured": false},
                "created_at": "2025-01-15T10:30:00Z"
            },
            "tier": "advanced"
        }}),
    );
    set(
        doc,
        &format!(
            "/paths/{}/post/responses/400/content/application~1json",
            escape("/api/scripts/")
        ),
        json!({"example": {
            "success": false, "message": "Invalid request data", "code": "VALIDATION_ERROR",
            "errors": {
                "name": ["Name must contain only alphanumeric characters, spaces, hyphens, underscores, and dots"],
                "script": [format!("Script content must be {} bytes or less", rules::SCRIPT_MAX_BYTES)]
            },
            "request_id": "i9j0k1l2", "tier": "advanced"
        }}),
    );
}
