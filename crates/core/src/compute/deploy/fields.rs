//! Deploy, step one: the request's fields on their own, every bad one answered at once (400), in the
//! order `docs/api-design.md` records. Nothing is read from the database here.

use barrack_api::instances::DeployRequest;

use crate::accounts::Caller;
use crate::catalog::gpu_counts;
use crate::compute::instances::{
    InstanceService, MAX_CLOUD_INIT_BYTES, MAX_RULES_PER_INSTANCE, MAX_VOLUMES_PER_DEPLOY,
    check_instance_name,
};
use crate::compute::leases::{LeaseTerms, check_terms};
use crate::network::{ValidRule, validate_rules};
use crate::platform::config::GpuModelConfig;
use crate::platform::labels::check_labels;
use crate::platform::validate::Validator;
use crate::{Error, Result};

/// What a deploy request is checked for: the deploy itself, or its preflight (which alone may ask for a
/// hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Deploy,
    Preflight,
}

/// What the field checks established.
pub(super) struct CheckedFields<'c> {
    /// The GPU model, which offers the requested count.
    pub model: &'c GpuModelConfig,
    /// The OS volume's size, within the configured bounds (a custom image may still raise it).
    pub os_size: u32,
    /// The instance's own rules, each valid and none twice.
    pub rules: Vec<ValidRule>,
    /// Its lease, if one was asked for.
    pub lease: Option<LeaseTerms>,
}

impl InstanceService {
    /// 413 for an oversized `cloud_init`, then every field's check (400).
    pub(super) fn check_fields(
        &self,
        caller: &Caller,
        request: &DeployRequest,
        purpose: Purpose,
    ) -> Result<CheckedFields<'_>> {
        let config = self.config();
        if request
            .cloud_init
            .as_ref()
            .is_some_and(|c| c.len() > MAX_CLOUD_INIT_BYTES)
        {
            return Err(Error::PayloadTooLarge(format!(
                "cloud_init must be {MAX_CLOUD_INIT_BYTES} bytes or less"
            )));
        }

        // Fields.
        let mut v = Validator::new();
        check_instance_name(&mut v, "instance_name", request.instance_name.trim());
        let model = config.gpu_model(&request.gpu_model);
        match model {
            None => v.add(
                "gpu_model",
                unknown_value(
                    "GPU model",
                    &request.gpu_model,
                    config.gpu_models.iter().map(|m| &m.name),
                ),
            ),
            Some(m) => {
                let counts = gpu_counts(m);
                v.check(
                    counts.contains(&request.gpu_count),
                    "gpu_count",
                    format!("GPU count for {} must be one of {counts:?}", m.name),
                );
            }
        }
        // With the other fields, so that a deploy missing its model and its region hears of both (the
        // region's tier and what it offers are checked once the model is known).
        if config.region(&request.region).is_none() {
            v.add(
                "region",
                super::plan::unknown_region(config, &request.region),
            );
        }
        if request.boot_from_volume {
            v.check(
                request.volume_id.is_some(),
                "volume_id",
                "volume_id is required when boot_from_volume is true",
            );
            v.check(
                request.image_name.is_none(),
                "image_name",
                "Boot from an image or from a volume, not both",
            );
        } else {
            v.check(
                request.image_name.as_deref().is_some_and(|i| !i.trim().is_empty()),
                "image_name",
                "image_name is required (or boot from a volume with volume_id and boot_from_volume: true)",
            );
            v.check(
                request
                    .ssh_key
                    .as_deref()
                    .is_some_and(|k| !k.trim().is_empty()),
                "ssh_key",
                "ssh_key is required to boot from an image",
            );
        }
        let limits = &config.volumes;
        let os_size = request
            .os_volume
            .as_ref()
            .map(|o| o.size)
            .unwrap_or(limits.minimum_bootable_size_gb);
        v.check(
            (limits.minimum_bootable_size_gb..=limits.maximum_size_gb).contains(&os_size),
            "os_volume.size",
            format!(
                "OS volume size must be between {} and {} GB",
                limits.minimum_bootable_size_gb, limits.maximum_size_gb
            ),
        );
        v.check(
            request.security_rules.len() <= MAX_RULES_PER_INSTANCE,
            "security_rules",
            format!("At most {MAX_RULES_PER_INSTANCE} rules per instance"),
        );
        let rules = validate_rules(&mut v, "security_rules", &request.security_rules);
        if request.boot_from_volume {
            v.check(
                request.os_volume.is_none(),
                "os_volume",
                "The boot volume is the OS disk: os_volume applies to image boot only",
            );
            if let Some(boot) = request.volume_id.as_deref().map(str::trim) {
                for (i, id) in request.existing_volumes.iter().enumerate() {
                    v.check(
                        id.trim() != boot,
                        &format!("existing_volumes[{i}]"),
                        format!("Volume {boot} is the boot volume; it cannot be a data volume too"),
                    );
                }
            }
        }
        let volume_count = request.volumes.len() + request.existing_volumes.len();
        if volume_count > MAX_VOLUMES_PER_DEPLOY {
            // Not checked one by one: a thousand volumes would be a thousand messages.
            v.add(
                "volumes",
                format!(
                    "At most {MAX_VOLUMES_PER_DEPLOY} data volumes per deploy, new and existing together; {volume_count} given"
                ),
            );
        } else {
            self.volumes()
                .check_new_volumes(caller, &mut v, &request.volumes);
        }
        if request.hold {
            v.check(
                purpose == Purpose::Preflight,
                "hold",
                "hold applies to POST /api/deploy-server/preflight/; deploy with the hold_id it returned",
            );
            v.check(
                request.hold_id.is_none(),
                "hold",
                "A deploy with a hold_id already has its GPUs; ask for a new hold without hold_id",
            );
        }
        check_labels(&mut v, "labels", &request.labels);
        let lease = check_terms(
            &mut v,
            self.now(),
            request.ttl_minutes,
            request.expires_at.as_deref(),
            request.on_expiry.as_deref(),
        );
        if lease.is_none() && request.on_expiry.is_some() && !v.has("on_expiry") {
            v.add("on_expiry", "on_expiry needs ttl_minutes or expires_at");
        }
        v.finish()?;
        let model = model.expect("validated");
        Ok(CheckedFields {
            model,
            os_size,
            rules,
            lease,
        })
    }
}

pub(super) fn unknown_value<'a>(
    what: &str,
    value: &str,
    valid: impl Iterator<Item = &'a String>,
) -> String {
    let valid: Vec<&str> = valid.map(String::as_str).collect();
    format!(
        "Unknown {what} '{value}'. Valid values: {}",
        valid.join(", ")
    )
}
