//! The NoCloud seed: an ISO 9660 image labelled `cidata` with `meta-data` and `user-data`, read at boot
//! by cloud-init (Ubuntu cloud images) and by the tiny guest.

use std::process::Command;

use crate::InstanceSpec;

const BOUNDARY: &str = "==BARRACK-SEED-BOUNDARY==";

/// `meta-data`: the instance id (cloud-init runs per-instance steps once per id) and host name.
pub fn meta_data(spec: &InstanceSpec) -> String {
    format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        spec.id,
        hostname(&spec.name)
    )
}

/// A host name from an instance name: lowercase letters, digits and hyphens, at most 63 characters.
pub fn hostname(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    let mut host: String = trimmed.chars().take(63).collect();
    while host.ends_with('-') {
        host.pop();
    }
    if host.is_empty() {
        "instance".into()
    } else {
        host
    }
}

/// `user-data`: a MIME multipart of a cloud-config (the keys for the default user `ubuntu`), the
/// instance's own cloud-config if any, and the startup script if any.
pub fn user_data(spec: &InstanceSpec) -> String {
    let mut config = String::from("#cloud-config\n");
    config.push_str(&format!("hostname: {}\n", hostname(&spec.name)));
    if !spec.ssh_public_keys.is_empty() {
        config.push_str("ssh_authorized_keys:\n");
        for key in &spec.ssh_public_keys {
            // One line per key; quoted so YAML never reads a key comment as syntax.
            let key = key.trim().replace(['\n', '\r'], " ");
            config.push_str(&format!("  - \"{}\"\n", key.replace('"', "\\\"")));
        }
    }
    let mut parts = vec![("text/cloud-config", config)];
    if let Some(cloud_init) = spec.cloud_init.as_deref().filter(|c| !c.trim().is_empty()) {
        let kind = if cloud_init.starts_with("#!") {
            "text/x-shellscript"
        } else {
            "text/cloud-config"
        };
        parts.push((kind, ensure_newline(cloud_init)));
    }
    if let Some(script) = spec
        .startup_script
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        let script = if script.starts_with("#!") {
            ensure_newline(script)
        } else {
            format!("#!/bin/sh\n{}", ensure_newline(script))
        };
        parts.push(("text/x-shellscript", script));
    }
    let mut out =
        format!("Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\nMIME-Version: 1.0\n\n");
    for (kind, body) in parts {
        out.push_str(&format!(
            "--{BOUNDARY}\nContent-Type: {kind}; charset=\"utf-8\"\nMIME-Version: 1.0\n\n{body}"
        ));
    }
    out.push_str(&format!("--{BOUNDARY}--\n"));
    out
}

fn ensure_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// The seed ISO's bytes, made with `genisoimage` (or `mkisofs`/`xorrisofs`, which take the same options).
pub fn iso(spec: &InstanceSpec) -> Result<Vec<u8>, String> {
    let dir = std::env::temp_dir().join(format!("barrack-seed-{}-{}", std::process::id(), spec.id));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("seed directory: {e}"))?;
    let result = (|| {
        std::fs::write(dir.join("meta-data"), meta_data(spec)).map_err(|e| format!("seed: {e}"))?;
        std::fs::write(dir.join("user-data"), user_data(spec)).map_err(|e| format!("seed: {e}"))?;
        let output = dir.join("seed.iso");
        let mut last_error = String::new();
        for tool in ["genisoimage", "mkisofs", "xorrisofs"] {
            let status = Command::new(tool)
                .arg("-quiet")
                .arg("-output")
                .arg(&output)
                .args(["-volid", "cidata", "-joliet", "-rock"])
                .arg(dir.join("user-data"))
                .arg(dir.join("meta-data"))
                .status();
            match status {
                Ok(status) if status.success() => {
                    return std::fs::read(&output).map_err(|e| format!("seed: {e}"));
                }
                Ok(status) => last_error = format!("{tool} exited with {status}"),
                Err(error) => last_error = format!("{tool}: {error}"),
            }
        }
        Err(format!(
            "cannot make the seed ISO (install genisoimage): {last_error}"
        ))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BootDisk;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            id: "i-1".into(),
            name: "My VM #1".into(),
            region: "R".into(),
            gpu_model: "m".into(),
            gpu_count: 1,
            vcpus: 1,
            ram_gb: 1,
            boot: BootDisk::Image {
                image: "tiny".into(),
                size_gb: 2,
            },
            ssh_public_keys: vec!["ssh-ed25519 AAAA me@host".into()],
            cloud_init: None,
            startup_script: Some("echo hi > /tmp/x".into()),
            volume_ids: vec![],
        }
    }

    #[test]
    fn user_data_carries_keys_and_the_script() {
        let data = user_data(&spec());
        assert!(data.contains("ssh_authorized_keys:\n  - \"ssh-ed25519 AAAA me@host\"\n"));
        assert!(data.contains("Content-Type: text/x-shellscript"));
        assert!(data.contains("#!/bin/sh\necho hi > /tmp/x\n"));
        assert!(data.ends_with(&format!("--{BOUNDARY}--\n")));
        assert_eq!(hostname("My VM #1"), "my-vm--1");
        assert!(meta_data(&spec()).contains("instance-id: i-1\n"));
    }
}
