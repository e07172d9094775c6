//! `barrack instances deploy`, with `--preflight` (every check and the price, nothing created) and
//! `--hold` (the GPUs and address reserved for the deploy that names the hold), and `release-hold`.

use std::path::PathBuf;

use barrack_api::instances::{
    DeployRequest, DeployedInstance, NewVolumeRequest, OsVolumeRequest, Preflight,
    SecurityRuleRequest,
};

use super::super::labels::{labels_of, parse_label};
use super::super::{Ctx, Output, read_input_file};
use super::lease::LeaseArgs;
use super::rules::parse_rule;
use super::{gpus, instance_output, timeout};
use crate::error::CliError;
use crate::output::{View, money};
use crate::wait::{self, WaitArgs};

/// The deploy examples and the rule syntax, which the one-line flag help has no room for.
pub(super) const DEPLOY_HELP: &str = "\
Examples:
  barrack instances deploy --name trainer --gpu-model H100-SXM5-80GB --region FINLAND-1 \\
    --image 'Ubuntu 24.04 + CUDA 12.8 Open + Docker' --ssh-key laptop --wait
  barrack instances deploy --name web --gpu-model RTX-A6000 --gpu-count 2 --region CANADA-1 \\
    --image 'Ubuntu Server 22.04 LTS R550 CUDA 12.4' --ssh-key laptop \\
    --rule ingress:tcp:22:0.0.0.0/0 --rule egress:any --cloud-init user-data.yaml --os-volume-size 200
  barrack instances deploy --name restored --gpu-model L40 --region CANADA-1 \\
    --volume-id BRK-A1B2C3V --boot-from-volume --no-public-ip
  barrack instances deploy --name trainer --gpu-model H100-SXM5-80GB --region FINLAND-1 \\
    --image 'Ubuntu 24.04 + CUDA 12.8 Open + Docker' --ssh-key laptop --preflight --hold
  barrack instances deploy --name trainer --gpu-model H100-SXM5-80GB --region FINLAND-1 \\
    --image 'Ubuntu 24.04 + CUDA 12.8 Open + Docker' --ssh-key laptop --hold-id hold-...

Security rules (--rule), DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]]:
  DIRECTION  ingress or egress
  PROTOCOL   tcp, udp, icmp, another IP protocol name or number; empty or `any` for every protocol
  PORTS      22 or 8000-8100 (tcp, udp and the like only); empty or `any` for every port
  REMOTE     a CIDR such as 203.0.113.0/24 (an IPv6 one makes an IPv6 rule); empty for anywhere";

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Instance name: 2 to 30 letters, digits, hyphens, underscores or dots
    #[arg(long)]
    name: String,
    /// GPU model (see `barrack catalog gpus`)
    #[arg(long)]
    gpu_model: String,
    /// GPUs in the instance (1, 2, 4 or 8, as the model allows)
    #[arg(long, default_value_t = 1)]
    gpu_count: u32,
    /// Region (see `barrack catalog regions`)
    #[arg(long)]
    region: String,
    /// OS image to boot (see `barrack catalog images`)
    #[arg(long)]
    image: Option<String>,
    /// Name or id of one of your SSH keys, installed for the default user (image boot)
    #[arg(long, value_name = "NAME|ID")]
    ssh_key: Option<String>,
    /// Bootable volume to boot from, with --boot-from-volume
    #[arg(long, value_name = "ID", requires = "boot_from_volume")]
    volume_id: Option<String>,
    /// Boot from --volume-id instead of an image
    #[arg(long, requires = "volume_id", conflicts_with = "image")]
    boot_from_volume: bool,
    /// Deploy without a public IP address
    #[arg(long)]
    no_public_ip: bool,
    /// Security rule, repeatable: DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]] (see below)
    #[arg(long = "rule", value_name = "RULE", value_parser = parse_rule)]
    rules: Vec<SecurityRuleRequest>,
    /// cloud-init user data to run on first boot (at most 16 KiB)
    #[arg(long, value_name = "FILE")]
    cloud_init: Option<PathBuf>,
    /// OS volume size in GB [default: the region's minimum]
    #[arg(long, value_name = "GB")]
    os_volume_size: Option<u32>,
    /// Attach one of your volumes, repeatable
    #[arg(long = "existing-volume", value_name = "ID")]
    existing_volumes: Vec<String>,
    /// Create and attach a data volume, repeatable (size in GB, type as in `barrack catalog pricing`)
    #[arg(long = "volume", value_name = "NAME:SIZE:TYPE", value_parser = parse_volume)]
    volumes: Vec<NewVolumeRequest>,
    /// Startup script to run on first boot
    #[arg(long, value_name = "ID")]
    script_id: Option<String>,
    /// Run the deploy at most once under this key: running the command again with the same key (within
    /// 24 hours) prints the first deploy's instance instead of deploying another [default: a new key per
    /// run, so the command's own retries are safe]
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Make every check the deploy makes and print its price, without deploying
    #[arg(long, conflicts_with = "wait")]
    preflight: bool,
    /// With --preflight: also reserve the GPUs and the public address for 60 seconds, for a deploy with
    /// --hold-id
    #[arg(long, requires = "preflight")]
    hold: bool,
    /// Deploy onto the GPUs and address a `--preflight --hold` reserved (same model, count and region)
    #[arg(long, value_name = "HOLD_ID")]
    hold_id: Option<String>,
    /// Label the instance, repeatable
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    #[command(flatten)]
    lease: LeaseArgs,
    #[command(flatten)]
    wait: WaitArgs,
}

/// A key no other run uses (process id and the time in nanoseconds): a retry the client makes after a
/// lost answer then cannot deploy twice.
fn fresh_idempotency_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("barrack-cli-{}-{nanos}", std::process::id())
}

pub(super) async fn deploy(args: DeployArgs, ctx: &Ctx) -> Result<Output, CliError> {
    let cloud_init = args
        .cloud_init
        .as_deref()
        .map(read_input_file)
        .transpose()?;
    let request = DeployRequest {
        gpu_model: args.gpu_model,
        gpu_count: args.gpu_count,
        region: args.region,
        instance_name: args.name,
        image_name: args.image,
        volume_id: args.volume_id,
        boot_from_volume: args.boot_from_volume,
        ssh_key: args.ssh_key,
        public_ip: !args.no_public_ip,
        security_rules: args.rules,
        cloud_init,
        os_volume: args.os_volume_size.map(|size| OsVolumeRequest { size }),
        existing_volumes: args.existing_volumes,
        volumes: args.volumes,
        script_id: args.script_id,
        hold_id: args.hold_id,
        hold: args.hold,
        labels: labels_of(args.labels),
        ttl_minutes: args.lease.ttl,
        expires_at: args.lease.expires_at,
        on_expiry: args.lease.on_expiry,
    };
    let key = args.idempotency_key.unwrap_or_else(fresh_idempotency_key);
    let client = ctx.client.with_idempotency_key(key);
    if args.preflight {
        let preflight = ctx.call(client.preflight(&request)).await?.data;
        return Ok(preflight_output(preflight));
    }
    let deployed = ctx.call(client.deploy(&request)).await?.data;
    let id = deployed.instance_id.clone();
    if args.wait.wait {
        let instance = wait::until_resting(ctx, &id, "ACTIVE", timeout(&args.wait)).await?;
        return Ok(instance_output(instance));
    }
    Ok(deployed_output(deployed).notice(format!(
        "Follow it with `barrack instances show {id}`, or deploy with --wait."
    )))
}

/// `release-hold`: the GPUs and address a hold reserved are given back before it expires.
pub(super) async fn release_hold(ctx: &Ctx, hold_id: &str) -> Result<Output, CliError> {
    let hold = ctx.call(ctx.client.release_hold(hold_id)).await?.data;
    let view = View::Text(format!(
        "{}: released {}×{} in {}",
        hold.hold_id, hold.gpu_model, hold.gpu_count, hold.region
    ));
    Ok(Output::new(&hold, view))
}

/// The deploy answer, before the instance is up.
pub(in crate::commands) fn deployed_output(d: DeployedInstance) -> Output {
    let view = View::Fields(vec![
        ("ID", d.instance_id.clone()),
        ("VM name", d.vm_name.clone()),
        ("Status", d.status.clone()),
        ("Region", d.region.clone()),
        ("GPUs", gpus(&d.specs)),
        ("Boot", d.boot_source.clone()),
        (
            "IP address",
            d.ip_address.clone().unwrap_or_else(|| d.ip_status.clone()),
        ),
        (
            "Price",
            format!(
                "{} {}/hour",
                money(d.billing.total_hourly_rate.0),
                d.billing.currency
            ),
        ),
        ("Created", d.created_at.clone()),
    ]);
    Output::new(&d, view).ids([d.instance_id.clone()])
}

/// A preflight's answer: the checks passed, the price, and the hold when one was asked for.
fn preflight_output(p: Preflight) -> Output {
    let mut fields = vec![
        ("Checks", format!("{} passed", p.checks.join(", "))),
        (
            "Price",
            format!("{} {}/hour", money(p.price_per_hour.0), p.currency),
        ),
    ];
    let mut ids = vec![];
    if let Some(hold) = &p.hold {
        fields.push(("Hold", hold.hold_id.clone()));
        fields.push((
            "Held",
            format!("{}×{} in {}", hold.gpu_model, hold.gpu_count, hold.region),
        ));
        if let Some(address) = &hold.ip_address {
            fields.push(("IP address", address.clone()));
        }
        fields.push(("Expires", hold.expires_at.clone()));
        ids.push(hold.hold_id.clone());
    }
    let output = Output::new(&p, View::Fields(fields)).ids(ids);
    match &p.hold {
        Some(hold) => output.notice(format!(
            "Deploy onto it with the same options and --hold-id {}, or release it with \
             `barrack instances release-hold {}`.",
            hold.hold_id, hold.hold_id
        )),
        None => output,
    }
}

/// `--volume NAME:SIZE:TYPE`.
fn parse_volume(text: &str) -> Result<NewVolumeRequest, String> {
    let malformed = || format!("'{text}' is not NAME:SIZE:TYPE, e.g. data:500:NVMe");
    let mut parts = text.split(':');
    let (Some(name), Some(size), Some(volume_type), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if name.trim().is_empty() || volume_type.trim().is_empty() {
        return Err(malformed());
    }
    let size = size
        .trim()
        .parse()
        .map_err(|_| format!("'{size}' is not a size in GB"))?;
    Ok(NewVolumeRequest {
        name: name.trim().to_string(),
        size,
        volume_type: volume_type.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse() {
        let v = parse_volume("data:500:NVMe").unwrap();
        assert_eq!(
            (v.name.as_str(), v.size, v.volume_type.as_str()),
            ("data", 500, "NVMe")
        );
        assert!(parse_volume("data:500").is_err());
        assert!(parse_volume("data:big:NVMe").is_err());
        assert!(parse_volume("data:1:NVMe:x").is_err());
    }
}
