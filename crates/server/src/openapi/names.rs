//! Schema names: the published Barrack docs name their schemas (`DeploymentRequest`, `GpuModelEnum`, ...),
//! and clients generated from them use those names, so the document publishes ours under them.

use serde_json::Value;

use super::escape;

/// Schemas published under another name than their Rust type's: (Rust name, published name).
pub const RENAMED_SCHEMAS: &[(&str, &str)] = &[
    // Requests.
    ("DeployRequest", "DeploymentRequest"),
    ("ScriptRequest", "CreateScriptRequest"),
    ("CreateSshKeyRequest", "CreateSSHKeyRequest"),
    ("CreateApiKeyRequest", "CreateAPIKeyRequest"),
    ("CreateImageRequest", "CreateImageFromSnapshotRequest"),
    (
        "SnapshotIdsRequest",
        "GetBatchSnapshotImageRelationshipsRequest",
    ),
    ("InstanceIdsRequest", "AttachFirewallRequest"),
    ("VolumeIdsRequest", "AttachVolumesRequest"),
    ("SecurityRuleRequest", "VMSecurityRuleRequest"),
    ("NewVolumeRequest", "VolumeCreate"),
    ("OsVolumeRequest", "OsVolume"),
    // Enumerations.
    ("Currency", "CurrencyEnum"),
    ("Tier", "TierEnum"),
    ("ResourceType", "ResourceTypeEnum"),
    ("TransactionType", "TransactionTypeEnum"),
    ("DepositStatus", "DepositStatusEnum"),
    // Deploy and instances.
    ("Envelope_DeployedInstance", "DeploymentResponse"),
    ("DeployedInstance", "DeploymentData"),
    ("Features", "InstanceFeatures"),
    ("GpuCharge", "GpuBilling"),
    ("ComputeCharge", "ComputeBilling"),
    ("StorageCharge", "StorageBilling"),
    ("DataVolumeCharge", "DataVolumeBilling"),
    ("Instance", "VMInstance"),
    ("Envelope_Instance", "VMDetailsResponse"),
    ("Envelope_InstanceList", "ListVMsResponse"),
    ("Envelope_HibernatedSummary", "GetHibernatedVMsResponse"),
    ("Envelope_TogglePublicIp", "ToggleVMPublicIPResponse"),
    ("RemoveSecurityRuleResponse", "RemoveVMSecurityRuleResponse"),
    ("Envelope_SecurityRule", "AddVMSecurityRuleResponse"),
    (
        "Envelope_InstanceFirewallList",
        "GetVMAttachedFirewallsResponse",
    ),
    ("InstanceFirewall", "AttachedFirewall"),
    ("InstanceBillingRecord", "BillingRecord"),
    // Catalog.
    ("Envelope_RegionList", "RegionsResponse"),
    ("GpuSpec", "GPUSpec"),
    ("Envelope_GpuSpecList", "GPUSpecsResponse"),
    ("GpuStockItem", "GPUStockItem"),
    ("GpuStockConfiguration", "GPUStockConfiguration"),
    ("Envelope_GpuStockList", "GPUStocksResponse"),
    ("OsImage", "OSImage"),
    ("Envelope_OsImageList", "OSImagesResponse"),
    ("PriceEntry", "Price"),
    // Account and money.
    ("CreditBalance", "Balance"),
    ("Envelope_CreditBalance", "CreditBalanceResponse"),
    ("ApiKey", "APIKeyResponse"),
    ("Envelope_ApiKeyList", "ListAPIKeysResponse"),
    ("Envelope_CreatedApiKey", "CreateAPIKeyResponse"),
    ("Envelope_DeletedApiKey", "DeleteAPIKeyResponse"),
    ("Envelope_AggregatedBilling", "AggregatedBillingResponse"),
    ("VolumeBillingResponse", "VolumeHourlyBillingResponse"),
    // SSH keys and scripts.
    ("SshKey", "SSHKeyResponse"),
    ("Envelope_SshKeyList", "GetSSHKeysResponse"),
    ("Envelope_SshKey", "GetSSHKeyDetailResponse"),
    ("Envelope_CreatedSshKey", "CreateSSHKeyResponse"),
    ("Envelope_DeletedSshKey", "DeleteSSHKeyResponse"),
    ("Envelope_ScriptList", "ScriptListResponse"),
    ("Envelope_Script", "ScriptDetailResponse"),
    ("Envelope_DeletedScripts", "BulkDeleteResponse"),
    // Volumes.
    ("Volume", "VolumeResponse"),
    ("Envelope_VolumeList", "GetVolumesWithNextNameResponse"),
    ("Envelope_Volume", "GetVolumeDetailsResponse"),
    ("VolumeType", "VolumeTypeItem"),
    ("Envelope_VolumeTypeList", "GetVolumeTypesResponse"),
    ("Envelope_VolumeAttachmentChange", "AttachVolumesResponse"),
    // Firewalls.
    ("FirewallSummary", "FirewallResponse"),
    ("Envelope_FirewallList", "ListFirewallsResponse"),
    ("Envelope_Firewall", "GetFirewallDetailsResponse"),
    ("Envelope_DeletedFirewall", "DeleteFirewallResponse"),
    ("Envelope_RemovedFirewallRule", "RemoveFirewallRuleResponse"),
    (
        "Envelope_FirewallAttachmentChange",
        "AttachFirewallResponse",
    ),
    ("Envelope_ProtocolList", "GetSupportedProtocolsResponse"),
    ("AvailableInstance", "FirewallInstance"),
    (
        "Envelope_AvailableInstanceList",
        "ListFirewallInstancesResponse",
    ),
    // AI chat.
    ("Envelope_AiModelList", "ModelsResponse"),
    ("Envelope_UsageSummary", "UsageSummaryResponse"),
    ("Envelope_UsageHistory", "UsageHistoryResponse"),
    ("AiTransaction", "AITransaction"),
    // Snapshots and images.
    ("Envelope_SnapshotList", "ListSnapshotsResponse"),
    ("Envelope_Snapshot", "GetSnapshotDetailsResponse"),
    ("Envelope_SnapshotAction", "DeleteSnapshotResponse"),
    ("Envelope_ImageList", "ImageListResponse"),
    ("Envelope_Image", "ImageDetailResponse"),
    ("Envelope_ImageAction", "ImageDeleteResponse"),
    (
        "Envelope_SnapshotImageRelationship",
        "SnapshotImageRelationshipResponse",
    ),
    (
        "Envelope_ImageRelationships",
        "BatchSnapshotImageRelationshipResponse",
    ),
];

/// Operations whose request body (`None`) or answer (`Some(status)`) the published docs name on its own,
/// though it has the same shape as another's: the schema is published again under that name.
pub const SEED_NAMED_OPERATIONS: &[(&str, &str, Option<u16>, &str)] = &[
    ("put", "/api/scripts/{id}/", None, "UpdateScriptRequest"),
    (
        "post",
        "/api/instances/{id}/detach-volumes/",
        None,
        "DetachVolumesRequest",
    ),
    (
        "post",
        "/api/firewalls/{id}/rules/",
        None,
        "AddFirewallRuleRequest",
    ),
    ("post", "/api/scripts/", Some(201), "ScriptCreateResponse"),
    (
        "put",
        "/api/scripts/{id}/",
        Some(200),
        "ScriptUpdateResponse",
    ),
    (
        "delete",
        "/api/scripts/{id}/",
        Some(200),
        "ScriptDeleteResponse",
    ),
    (
        "post",
        "/api/instances/{id}/detach-volumes/",
        Some(200),
        "DetachVolumesResponse",
    ),
    ("post", "/api/volumes/", Some(201), "CreateVolumeResponse"),
    (
        "post",
        "/api/volumes/{id}/clone/",
        Some(201),
        "CloneVolumeResponse",
    ),
    (
        "post",
        "/api/volumes/{id}/resize/",
        Some(200),
        "ResizeVolumeResponse",
    ),
    (
        "delete",
        "/api/volumes/{id}/",
        Some(200),
        "DeleteVolumeResponse",
    ),
    (
        "post",
        "/api/firewalls/",
        Some(201),
        "CreateFirewallResponse",
    ),
    (
        "post",
        "/api/firewalls/{id}/rules/",
        Some(201),
        "AddFirewallRuleResponse",
    ),
    (
        "post",
        "/api/snapshots/",
        Some(201),
        "CreateSnapshotResponse",
    ),
    (
        "post",
        "/api/snapshots/{id}/restore/",
        Some(201),
        "RestoreSnapshotResponse",
    ),
    ("post", "/api/images/", Some(201), "ImageCreateResponse"),
    (
        "get",
        "/api/instances/snapshot-eligible/",
        Some(200),
        "ListVMsForSnapshotResponse",
    ),
    (
        "post",
        "/api/instances/{id}/start/",
        Some(200),
        "StartVMResponse",
    ),
    (
        "post",
        "/api/instances/{id}/stop/",
        Some(200),
        "StopVMResponse",
    ),
    (
        "post",
        "/api/instances/{id}/reboot/",
        Some(200),
        "RebootVMResponse",
    ),
    (
        "post",
        "/api/instances/{id}/hibernate/",
        Some(200),
        "HibernateVMResponse",
    ),
    (
        "post",
        "/api/instances/{id}/restore/",
        Some(200),
        "RestoreVMResponse",
    ),
    (
        "delete",
        "/api/instances/{id}/",
        Some(200),
        "DeleteVMResponse",
    ),
];

const PREFIX: &str = "#/components/schemas/";

pub(super) fn apply(doc: &mut Value) {
    refer_to_envelope_data(doc);
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("components.schemas");
    for (from, to) in RENAMED_SCHEMAS {
        let schema = schemas
            .shift_remove(*from)
            .unwrap_or_else(|| panic!("no schema {from} to publish as {to}"));
        assert!(
            schemas.insert(to.to_string(), schema).is_none(),
            "two schemas named {to}"
        );
    }
    rewrite_refs(doc, &|name| {
        RENAMED_SCHEMAS
            .iter()
            .find(|(from, _)| *from == name)
            .map(|(_, to)| to.to_string())
    });
    for (method, path, status, name) in SEED_NAMED_OPERATIONS {
        let pointer = match status {
            None => format!(
                "/paths/{}/{method}/requestBody/content/application~1json/schema",
                escape(path)
            ),
            Some(status) => format!(
                "/paths/{}/{method}/responses/{status}/content/application~1json/schema",
                escape(path)
            ),
        };
        let target = doc
            .pointer_mut(&pointer)
            .unwrap_or_else(|| panic!("no schema at {pointer}"));
        let original = target["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix(PREFIX))
            .unwrap_or_else(|| panic!("{pointer} is not a reference"))
            .to_string();
        *target = serde_json::json!({ "$ref": format!("{PREFIX}{name}") });
        let copy = doc["components"]["schemas"][&original].clone();
        let schemas = doc["components"]["schemas"].as_object_mut().unwrap();
        assert!(
            schemas.insert(name.to_string(), copy).is_none(),
            "two schemas named {name}"
        );
    }
    sort_schemas(doc);
}

/// utoipa writes the `data` of each `Envelope<T>` out in full: it becomes a reference to `T`'s own schema,
/// so that clients have one type for it.
fn refer_to_envelope_data(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].as_object_mut().unwrap();
    let named: Vec<(String, Value)> = schemas
        .iter()
        .filter(|(name, _)| !name.starts_with("Envelope_"))
        .map(|(name, schema)| (name.clone(), schema.clone()))
        .collect();
    for (name, schema) in schemas.iter_mut() {
        if !name.starts_with("Envelope_") {
            continue;
        }
        let data = &mut schema["properties"]["data"];
        if data.get("$ref").is_some() {
            continue;
        }
        if let Some((target, _)) = named.iter().find(|(_, s)| s == data) {
            *data = serde_json::json!({ "$ref": format!("{PREFIX}{target}") });
        }
    }
}

/// Components in name order, as utoipa lists them.
fn sort_schemas(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].as_object_mut().unwrap();
    let mut entries: Vec<(String, Value)> = std::mem::take(schemas).into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.extend(entries);
}

/// Rewrites every `$ref` to a schema that `rename` renames.
pub(super) fn rewrite_refs(value: &mut Value, rename: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(new) = r.strip_prefix(PREFIX).and_then(rename)
            {
                *r = format!("{PREFIX}{new}");
            }
            for v in map.values_mut() {
                rewrite_refs(v, rename);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, rename)),
        _ => {}
    }
}
