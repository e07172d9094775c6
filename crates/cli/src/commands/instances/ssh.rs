//! `barrack instances ssh`: the system `ssh` pointed at an instance, or the command printed.

use super::super::{Ctx, Output};
use super::{Target, resolve};
use crate::error::CliError;

/// The account `barrack instances ssh` signs in as on Barrack's OS images.
pub(super) const DEFAULT_SSH_USER: &str = "ubuntu";

/// Opens an SSH session on the instance (or prints the command, with `print`).
pub(super) async fn ssh(
    ctx: &Ctx,
    target: &Target,
    print: bool,
    user: &str,
    args: Vec<String>,
) -> Result<Output, CliError> {
    let id = resolve(ctx, &target.target).await?;
    let instance = ctx.call(ctx.client.instance(&id)).await?.data;
    let address = instance.ip_address.ok_or_else(|| {
        // What gives it an address depends on why it has none.
        CliError::Usage(match instance.status.as_str() {
            "ACTIVE" | "SHUTOFF" if !instance.public_ip => format!(
                "instance {id} has no public IP address: give it one with `barrack instances toggle-ip {id}`"
            ),
            "HIBERNATED" => format!(
                "instance {id} is hibernated and has no address: restore it with `barrack instances restore {id}`"
            ),
            status => format!(
                "instance {id} has no public IP address while it is {status}; see `barrack instances show {id}`"
            ),
        })
    })?;
    let command = ssh_arguments(&id, user, &address, instance.ssh_port, args);
    if print {
        let words: Vec<String> = std::iter::once("ssh".to_string())
            .chain(command.iter().map(|a| shell_quote(a)))
            .collect();
        return Ok(Output::text(words.join(" ")));
    }
    if super::super::health::simulated(ctx).await? {
        return Err(CliError::Other(format!(
            "instance {id} runs in the server's simulated data centre: no machine answers at \
             {address}, so there is nothing to SSH into (`--print` shows the command a real \
             instance would take)"
        )));
    }
    run_ssh(&command)
}

/// The arguments of `ssh` for an instance. A forwarded port (a guest on user-mode networking) is where
/// its SSH server answers; the host's ports pass from one instance to the next, so the guest's host key
/// is remembered under the instance's id, and a new instance's key is accepted the first time.
fn ssh_arguments(
    id: &str,
    user: &str,
    address: &str,
    port: Option<u16>,
    args: Vec<String>,
) -> Vec<String> {
    let mut command = match port {
        Some(port) => vec![
            "-p".to_string(),
            port.to_string(),
            "-o".to_string(),
            format!("HostKeyAlias={id}"),
            "-o".to_string(),
            "StrictHostKeyChecking=accept-new".to_string(),
        ],
        None => vec![],
    };
    command.push(format!("{user}@{address}"));
    command.extend(args);
    command
}

/// Quotes a word for a POSIX shell, so a printed command can be pasted as it is.
fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Hands the terminal to `ssh`: on Unix the process becomes ssh, so signals, the exit code and the
/// terminal behave exactly as if the user had typed the ssh command.
#[cfg(unix)]
fn run_ssh(args: &[String]) -> Result<Output, CliError> {
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new("ssh").args(args).exec();
    Err(CliError::Other(format!("cannot run ssh: {error}")))
}

#[cfg(not(unix))]
fn run_ssh(args: &[String]) -> Result<Output, CliError> {
    let status = std::process::Command::new("ssh")
        .args(args)
        .status()
        .map_err(|e| CliError::Other(format!("cannot run ssh: {e}")))?;
    std::process::exit(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_goes_to_the_forwarded_port_and_remembers_the_key_per_instance() {
        let args = vec!["uname".to_string()];
        assert_eq!(
            ssh_arguments("BRK-A1B2C3D", "ubuntu", "203.0.113.7", None, args.clone()),
            ["ubuntu@203.0.113.7", "uname"]
        );
        assert_eq!(
            ssh_arguments("BRK-A1B2C3D", "ubuntu", "127.0.0.1", Some(22200), args),
            [
                "-p",
                "22200",
                "-o",
                "HostKeyAlias=BRK-A1B2C3D",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "ubuntu@127.0.0.1",
                "uname"
            ]
        );
    }

    #[test]
    fn printed_commands_can_be_pasted() {
        assert_eq!(shell_quote("ubuntu@203.0.113.7"), "ubuntu@203.0.113.7");
        assert_eq!(shell_quote("-i"), "-i");
        assert_eq!(shell_quote("~/.ssh/id"), "'~/.ssh/id'");
        assert_eq!(shell_quote("echo hi"), "'echo hi'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
