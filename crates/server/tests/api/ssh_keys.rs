//! SSH keys through the API: keys made by the system's ssh-keygen import with the fingerprints it prints,
//! generated private keys are accepted by ssh-keygen, and bad keys are refused with the field named.

use std::path::Path;
use std::process::Command;

use barrack_api::Tier;
use barrack_api::ssh_keys::CreateSshKeyRequest;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    keys_made_by_ssh_keygen_import_with_its_fingerprints,
    bad_keys_are_refused_with_the_field_named
);

fn keygen(dir: &Path, name: &str, args: &[&str]) -> (String, String) {
    let path = dir.join(name);
    let made = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .args(args)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(format!("{}.pub", path.display())).unwrap();
    let printed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(format!("{}.pub", path.display()))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8(printed.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    (public, fingerprint)
}

async fn keys_made_by_ssh_keygen_import_with_its_fingerprints(db: Db) {
    if Command::new("ssh-keygen").arg("-?").output().is_err() {
        crate::common::skipped(
            "ssh-keygen",
            &format!("ssh_keys::keys_made_by_ssh_keygen_import_with_its_fingerprints::{db:?}"),
            "ssh-keygen is not installed (apt-get install openssh-client)",
        );
        return;
    }
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    let dir = app.database.dir.join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, args, bits) in [
        ("rsa3072", &["-t", "rsa", "-b", "3072"][..], 3072),
        ("ed25519", &["-t", "ed25519"][..], 256),
        ("ecdsa256", &["-t", "ecdsa", "-b", "256"][..], 256),
        ("ecdsa521", &["-t", "ecdsa", "-b", "521"][..], 521),
    ] {
        let (public, fingerprint) = keygen(&dir, name, args);
        let key = client
            .create_ssh_key(&CreateSshKeyRequest {
                name: name.into(),
                public_key: Some(public),
            })
            .await
            .unwrap()
            .data;
        assert_eq!(key.key.fingerprint, fingerprint, "{name}");
        assert_eq!(key.key.bits, bits, "{name}");
        assert!(key.private_key.is_none());
    }

    let generated = client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "made-here".into(),
            public_key: None,
        })
        .await
        .unwrap()
        .data;
    let private = generated.private_key.expect("shown once");
    let path = dir.join("made-here");
    std::fs::write(&path, &private).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    let derived = String::from_utf8(derived.stdout).unwrap();
    assert_eq!(
        derived.split_whitespace().nth(1),
        generated.key.public_key.split_whitespace().nth(1)
    );
    assert_eq!(
        (generated.key.algorithm.as_str(), generated.key.bits),
        ("ssh-rsa", 2048)
    );
    let shown = client.ssh_key(&generated.key.id).await.unwrap();
    assert!(
        !serde_json::to_string(&shown)
            .unwrap()
            .contains("PRIVATE KEY"),
        "the private key is never stored"
    );

    let (other, _) = app.user(Tier::Legacy).await;
    assert_eq!(
        other.ssh_key(&generated.key.id).await.unwrap_err().status(),
        Some(404)
    );
    app.stop().await;
}

async fn bad_keys_are_refused_with_the_field_named(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    let good =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test";
    let dsa = "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACBAPzq test";
    for (name, key) in [
        ("garbage", "this is not a key"),
        ("truncated", &good[..50]),
        ("dsa", dsa),
        (
            "private",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
        ),
        // `""` is an absent key, which generates a pair (fidelity::null_empty_and_empty_lists_mean_absent);
        // white space is no key.
        ("blank", " "),
    ] {
        let err = client
            .create_ssh_key(&CreateSshKeyRequest {
                name: name.into(),
                public_key: Some(key.into()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(400), "{name}");
        let fields = err.field_errors().unwrap();
        assert!(fields.contains_key("public_key"), "{name}: {fields:?}");
        if name == "dsa" {
            assert!(fields["public_key"][0].contains("DSA"), "{fields:?}");
        }
    }
    let bad_name = client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "no spaces allowed".into(),
            public_key: Some(good.into()),
        })
        .await
        .unwrap_err();
    assert!(bad_name.field_errors().unwrap().contains_key("name"));
    client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "mine".into(),
            public_key: Some(good.into()),
        })
        .await
        .unwrap();
    let dup = client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "mine".into(),
            public_key: Some(good.into()),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (dup.status(), dup.code()),
        (Some(409), Some("DUPLICATE_NAME"))
    );
    // The same key under another name (with another comment) is the key already saved.
    let again = client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "mine-again".into(),
            public_key: Some(good.replace(" test", " laptop")),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(409), Some("CONFLICT"))
    );
    assert!(again.to_string().contains("'mine'"), "{again}");
    assert_eq!(client.ssh_keys().await.unwrap().data.ssh_keys.len(), 1);
    // Another account may hold the same key.
    let (other, _) = app.user(Tier::Legacy).await;
    other
        .create_ssh_key(&CreateSshKeyRequest {
            name: "mine".into(),
            public_key: Some(good.into()),
        })
        .await
        .unwrap();
    app.stop().await;
}
