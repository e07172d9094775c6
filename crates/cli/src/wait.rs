//! `--wait`: the server answers once an instance rests in a stable state, so scripts can run
//! `deploy --wait && ssh` without a sleep loop of their own. People watching a terminal see a spinner.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use barrack_api::instances::Instance;

use crate::commands::Ctx;
use crate::error::CliError;

/// The states an instance rests in; every other state means an operation is still running.
const STABLE: [&str; 5] = ["ACTIVE", "SHUTOFF", "HIBERNATED", "DELETED", "ERROR"];

/// The `--wait` and `--timeout` flags of commands that start an operation.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Wait until the operation finishes; exit 1 if the instance ends in ERROR or the wait times out
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 600, requires = "wait",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// How an instance came to rest: in a state, or gone (`DELETED`, or not found any more after a delete).
#[derive(Debug)]
enum Settled {
    Resting(Box<Instance>),
    Deleted,
}

/// Waits for an operation to leave the instance in `expected` (ACTIVE, SHUTOFF or HIBERNATED).
pub async fn until_resting(
    ctx: &Ctx,
    id: &str,
    expected: &str,
    timeout: Duration,
) -> Result<Instance, CliError> {
    match poll(ctx, id, expected, timeout).await? {
        Settled::Resting(instance) => Ok(*instance),
        Settled::Deleted => Err(CliError::Other(format!(
            "instance {id} was deleted while waiting for it to become {expected}"
        ))),
    }
}

/// Waits for a deletion to finish.
pub async fn until_deleted(ctx: &Ctx, id: &str, timeout: Duration) -> Result<(), CliError> {
    // Any state but DELETED is an error out of `poll`.
    poll(ctx, id, "DELETED", timeout).await.map(drop)
}

/// Waits for the instance with `GET /api/instances/{id}/?wait_for=`, which answers when the state is
/// reached, so nothing polls; the spinner turns meanwhile. Fails (exit 1) on ERROR, on a stable state other
/// than `expected` (the operation did not take), and on timeout.
async fn poll(ctx: &Ctx, id: &str, expected: &str, timeout: Duration) -> Result<Settled, CliError> {
    let started = Instant::now();
    let mut spinner = Spinner::on_terminal(ctx.progress);
    let wait = ctx.call(ctx.client.wait_for_instance(id, expected, timeout));
    tokio::pin!(wait);
    let answer = loop {
        tokio::select! {
            answer = &mut wait => break answer,
            _ = tokio::time::sleep(Spinner::FRAME) => {
                if let Some(spinner) = &mut spinner {
                    spinner.draw(&format!(
                        "{id}: waiting for {expected} ({}s)",
                        started.elapsed().as_secs()
                    ));
                }
            }
        }
    };
    drop(spinner);
    let instance = match answer {
        Ok(envelope) => envelope.data,
        // Deleted instances are not found any more.
        Err(e) if expected == "DELETED" && e.status() == Some(404) => return Ok(Settled::Deleted),
        Err(e) => return Err(e),
    };
    let status = instance.status.as_str();
    if STABLE.contains(&status) {
        return settle(instance, expected);
    }
    Err(CliError::Other(format!(
        "timed out after {}s waiting for {id} to become {expected}; it is {status}",
        timeout.as_secs()
    )))
}

fn settle(instance: Instance, expected: &str) -> Result<Settled, CliError> {
    let reason = instance
        .status_reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    match instance.status.as_str() {
        "DELETED" if expected == "DELETED" => Ok(Settled::Deleted),
        status if status == expected => Ok(Settled::Resting(Box::new(instance))),
        "ERROR" => Err(CliError::Other(format!(
            "instance {} is in ERROR{reason}",
            instance.instance_id
        ))),
        status => Err(CliError::Other(format!(
            "instance {} rests in {status}, not {expected}{reason}",
            instance.instance_id
        ))),
    }
}

/// A one-line spinner on stderr, erased when dropped so it never mixes with the command's output.
struct Spinner {
    frame: usize,
}

impl Spinner {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    const FRAME: Duration = Duration::from_millis(100);

    /// Only where someone is watching and asked for it: on a pipe, in a log, or under `-q` the escape
    /// codes would be noise (`TERM=dumb` and `NO_COLOR` say the same).
    fn on_terminal(wanted: bool) -> Option<Spinner> {
        let plain = std::env::var_os("NO_COLOR").is_some()
            || std::env::var("TERM").is_ok_and(|t| t == "dumb");
        // `then`, not `then_some`: a spinner made and dropped at once would still erase a line.
        (wanted && !plain && std::io::stderr().is_terminal()).then(|| Spinner { frame: 0 })
    }

    fn draw(&mut self, text: &str) {
        let frame = Self::FRAMES[self.frame % Self::FRAMES.len()];
        self.frame += 1;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{frame} {text}");
        let _ = err.flush();
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An instance as the API shows it, in `status`.
    pub(crate) fn instance(status: &str, reason: Option<&str>) -> Instance {
        serde_json::from_value(serde_json::json!({
            "instance_id": "BRK-A1B2C3D", "name": "trainer", "vm_name": "barrack-h100s-a1b2c3",
            "region": "FINLAND-1", "tier": "advanced", "status": status, "status_reason": reason,
            "ip_address": "203.0.113.7", "ip_status": "assigned", "public_ip": true,
            "boot_source": "image", "operating_system": "Ubuntu 24.04", "ssh_key_id": "BRK-K1K2K3K",
            "script_id": null,
            "specs": {"gpu_type": "H100-SXM5-80GB", "gpu_count": 1, "ram_gb": 180, "vcpus": 28,
                      "storage_gb": 100},
            "billing": {"breakdown": {
                "compute": {"gpu": {"model": "H100-SXM5-80GB", "count": 1, "hourly_rate": 2.49}},
                "storage": {"os_volume": {"size_gb": 100, "type": "NVMe", "hourly_rate": 0.0293},
                            "data_volumes": [], "data_volumes_total": 0}},
                "total_hourly_rate": 2.5193, "currency": "USD"},
            "features": {"startup_script_configured": false},
            "security_rules": [{"id": "BRK-R1R2R3R", "direction": "ingress", "protocol": "tcp",
                                "ethertype": "IPv4", "port_range_min": 22, "port_range_max": 22,
                                "remote_ip_prefix": "0.0.0.0/0", "source": "instance"}],
            "allowed_actions": ["stop", "reboot", "hibernate", "delete"],
            "created_at": "2025-01-15T10:30:00Z", "updated_at": "2025-01-15T10:30:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn stable_states_settle_or_fail() {
        assert!(matches!(
            settle(instance("ACTIVE", None), "ACTIVE"),
            Ok(Settled::Resting(_))
        ));
        assert!(matches!(
            settle(instance("DELETED", None), "DELETED"),
            Ok(Settled::Deleted)
        ));
        let error = settle(instance("ERROR", Some("host lost")), "ACTIVE").unwrap_err();
        assert_eq!(error.exit_code(), 1);
        assert!(
            error.to_string().ends_with("is in ERROR: host lost"),
            "{error}"
        );
        let other = settle(instance("SHUTOFF", None), "ACTIVE").unwrap_err();
        assert!(other.to_string().contains("rests in SHUTOFF, not ACTIVE"));
    }
}
