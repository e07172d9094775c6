//! `barrack ssh-keys`: the public keys instances are deployed with. Import one you have, or let the API
//! generate a pair whose private half is written once to a private file and never stored by Barrack.

use std::io::Write;
use std::path::{Path, PathBuf};

use barrack_api::ssh_keys::{CreateSshKeyRequest, CreatedSshKey, SshKey};
use clap::Subcommand;

use super::{Ctx, Output, read_input_file};
use crate::error::CliError;
use crate::output::{Table, View};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List your SSH keys
    #[command(after_help = "Examples:\n  barrack ssh-keys list\n  barrack ssh-keys list -q")]
    List,
    /// Show one SSH key with its public key
    #[command(after_help = "Example:\n  barrack ssh-keys show BRK-A1B2C3K")]
    Show {
        /// The key's id (BRK-...K)
        id: String,
    },
    /// Import a public key from a .pub file (OpenSSH format)
    #[command(after_help = "Examples:\n  \
        barrack ssh-keys import --name laptop --file ~/.ssh/id_ed25519.pub\n  \
        barrack ssh-keys import --name ci --file deploy.pub -q")]
    Import {
        /// A name to deploy with (letters, digits, hyphens, underscores, dots)
        #[arg(long)]
        name: String,
        /// The public key file
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
    },
    /// Generate an RSA key pair; the private key is saved to --file (mode 600) and shown nowhere else
    #[command(after_help = "Examples:\n  \
        barrack ssh-keys generate --name gpu --file ~/.ssh/barrack_gpu\n  \
        barrack ssh-keys generate --name gpu --file ./gpu.pem --force")]
    Generate {
        /// A name to deploy with (letters, digits, hyphens, underscores, dots)
        #[arg(long)]
        name: String,
        // `--file` as for import: `--output` is every command's output format.
        /// Where to save the private key: a new file, in a directory that exists and can be written
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// Replace the file if it exists
        #[arg(long)]
        force: bool,
    },
    /// Delete an SSH key (refused while a live instance uses it)
    #[command(after_help = "Example:\n  barrack ssh-keys delete BRK-A1B2C3K")]
    Delete {
        /// The key's id (BRK-...K)
        id: String,
    },
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::List => {
            let data = ctx.call(client.ssh_keys()).await?.data;
            let mut table = Table::new(
                &["ID", "NAME", "ALGORITHM", "BITS", "FINGERPRINT", "CREATED"],
                "No SSH keys.",
            );
            for k in &data.ssh_keys {
                table.row([
                    k.id.clone(),
                    k.name.clone(),
                    k.algorithm.clone(),
                    k.bits.to_string(),
                    k.fingerprint.clone(),
                    k.created_at.clone(),
                ]);
            }
            let ids: Vec<String> = data.ssh_keys.iter().map(|k| k.id.clone()).collect();
            Ok(Output::new(&data, View::Table(table)).ids(ids))
        }
        Command::Show { id } => {
            let data = ctx.call(client.ssh_key(&id)).await?.data;
            Ok(key_output(&data, &data))
        }
        Command::Import { name, file } => {
            let text = read_input_file(&file)?;
            if text.contains("PRIVATE KEY") {
                return Err(CliError::Usage(format!(
                    "{} holds a private key: import the public one (usually the .pub file next to it)",
                    file.display()
                )));
            }
            let request = CreateSshKeyRequest {
                name,
                public_key: Some(text.trim().to_string()),
            };
            let data = ctx.call(client.create_ssh_key(&request)).await?.data;
            Ok(key_output(&data, &data.key))
        }
        Command::Generate { name, file, force } => {
            // Checked before the call, so a refusal leaves no key behind on the server.
            check_destination(&file, force)?;
            let request = CreateSshKeyRequest {
                name,
                public_key: None,
            };
            let CreatedSshKey { key, private_key } =
                ctx.call(client.create_ssh_key(&request)).await?.data;
            let private_key = private_key.ok_or_else(|| {
                CliError::Other("the API generated a key but sent no private key".into())
            })?;
            save_private_key(&file, &private_key, force).map_err(|e| {
                CliError::Other(format!(
                    "cannot save the private key to {}: {e} (delete key {} and try again)",
                    file.display(),
                    key.id
                ))
            })?;
            // `-o json` is the key without its private half: that goes to the file only.
            Ok(key_output(&key, &key).notice(format!(
                "Saved the private key to {} (mode 600); Barrack does not keep it.\n\
                 Connect with: barrack instances ssh INSTANCE -- -i {}",
                file.display(),
                file.display()
            )))
        }
        Command::Delete { id } => {
            let data = ctx.call(client.delete_ssh_key(&id)).await?.data;
            let view = View::Text(format!("Deleted SSH key {}", data.id));
            Ok(Output::new(&data, view).ids([data.id.clone()]))
        }
    }
}

/// A key as fields, with `data` as its JSON; `-q` prints its id.
fn key_output(data: &impl serde::Serialize, key: &SshKey) -> Output {
    let view = View::Fields(vec![
        ("ID", key.id.clone()),
        ("Name", key.name.clone()),
        (
            "Algorithm",
            format!("{} ({} bits)", key.algorithm, key.bits),
        ),
        ("Fingerprint", key.fingerprint.clone()),
        ("Public key", key.public_key.clone()),
        ("Created", key.created_at.clone()),
    ]);
    Output::new(data, view).ids([key.id.clone()])
}

/// Writes the key readable by its owner only, as `ssh` insists. Without `overwrite` the file must not
/// exist, even if it appeared since the check before the API call.
/// Whether the private key could be saved at `path`: a file that is not there (or `--force`), in a
/// directory that exists and can be written. Checked before the key is made, so a key whose private half
/// cannot be saved is never created.
fn check_destination(path: &Path, overwrite: bool) -> Result<(), CliError> {
    if !overwrite && path.exists() {
        return Err(CliError::Usage(format!(
            "{} exists: choose another --file, or replace it with --force",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "directory {} does not exist: create it, or choose another --file",
            dir.display()
        )));
    }
    // Permissions alone do not say (ACLs, read-only mounts): write a file there and remove it.
    let probe = dir.join(format!(".barrack-key-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot write to directory {}: {e}; choose another --file",
                dir.display()
            ))
        })
}

fn save_private_key(path: &Path, key: &str, overwrite: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // `mode` applies only to a new file; one being replaced keeps its own.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(key.as_bytes())?;
    if !key.ends_with('\n') {
        // OpenSSH refuses a private key without its final newline.
        file.write_all(b"\n")?;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::save_private_key;

    #[cfg(unix)]
    #[test]
    fn private_keys_are_private_and_never_overwritten_by_accident() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("barrack-cli-unit-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("id");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(save_private_key(&path, "new", false).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        save_private_key(&path, "new", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
