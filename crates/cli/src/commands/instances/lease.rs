//! `barrack instances lease` and the lease flags of `deploy`: when an instance deletes or hibernates
//! itself.

use barrack_api::labels::InstancePatch;

use super::super::labels::parse_ttl;
use super::super::{Ctx, Output};
use super::{Target, instance_output, resolve};
use crate::error::CliError;

/// A lease: when the instance deletes or hibernates itself.
#[derive(Debug, clap::Args)]
pub struct LeaseArgs {
    /// End the lease this long from now, at most 366 days: 90m, 2h, 1d
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl, conflicts_with = "expires_at")]
    pub(super) ttl: Option<i64>,
    /// End the lease at this time, in the future and at most 366 days ahead (RFC 3339:
    /// YYYY-MM-DDTHH:MM:SSZ)
    #[arg(long, value_name = "TIME")]
    pub(super) expires_at: Option<String>,
    /// What happens at the end: delete or hibernate (a new lease deletes by default; a moved one
    /// keeps its own)
    #[arg(long, value_name = "ACTION", value_parser = ["delete", "hibernate"])]
    pub(super) on_expiry: Option<String>,
}

/// Sets, changes or (with `clear`) ends the instance's lease.
pub(super) async fn set_lease(
    ctx: &Ctx,
    target: &Target,
    lease: LeaseArgs,
    clear: bool,
) -> Result<Output, CliError> {
    if !clear && lease.ttl.is_none() && lease.expires_at.is_none() && lease.on_expiry.is_none() {
        return Err(CliError::Usage(
            "give --ttl, --expires-at or --on-expiry to set the lease, or --clear to end it".into(),
        ));
    }
    let id = resolve(ctx, &target.target).await?;
    let patch = InstancePatch {
        ttl_minutes: lease.ttl,
        expires_at: lease.expires_at,
        on_expiry: lease.on_expiry,
        clear_lease: clear,
    };
    let data = ctx.call(ctx.client.patch_instance(&id, &patch)).await?.data;
    Ok(instance_output(data))
}
