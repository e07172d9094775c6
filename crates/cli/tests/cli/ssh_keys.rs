//! SSH keys: a generated private key lands in a private file OpenSSH accepts, and is never overwritten
//! by accident; a private key is refused for import.

use std::process::Command;

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_keys_are_saved_privately_for_openssh() {
    let server = TestServer::start().await;
    let cli = server.barrack();
    let path = server.dir.join("gpu_key");
    let output = path.to_str().unwrap();

    let generated = cli
        .run(&[
            "ssh-keys", "generate", "--name", "gpu", "--file", output, "-o", "json",
        ])
        .await
        .json();
    assert!(
        generated.get("private_key").is_none(),
        "the private key goes to the file only"
    );
    let public_key = generated["public_key"].as_str().unwrap();
    assert!(public_key.starts_with("ssh-rsa "));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    let derived = String::from_utf8(derived.stdout).unwrap();
    let material = |line: &str| line.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(material(&derived), material(public_key));

    let before = std::fs::read_to_string(&path).unwrap();
    let again = cli
        .run(&["ssh-keys", "generate", "--name", "gpu2", "--file", output])
        .await;
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains("--force"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    assert_eq!(
        cli.run(&["ssh-keys", "list", "-q"]).await.lines().len(),
        1,
        "a refused generate leaves no key behind"
    );
    // A file that cannot be written (its directory missing) is refused before a key is made.
    let nowhere = server.dir.join("no-such-dir").join("key.pem");
    let refused = cli
        .run(&[
            "ssh-keys",
            "generate",
            "--name",
            "orphan",
            "--file",
            nowhere.to_str().unwrap(),
        ])
        .await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("does not exist"), "{refused:?}");
    assert_eq!(
        cli.run(&["ssh-keys", "list", "-q"]).await.lines().len(),
        1,
        "a key whose private half cannot be saved is never made"
    );
    let forced = cli
        .run(&[
            "ssh-keys", "generate", "--name", "gpu2", "--file", output, "--force",
        ])
        .await;
    assert!(forced.ok().contains("Fingerprint"), "{forced:?}");
    assert!(forced.stderr.contains("Saved the private key"));
    assert_ne!(std::fs::read_to_string(&path).unwrap(), before);

    let refused = cli
        .run(&["ssh-keys", "import", "--name", "oops", "--file", output])
        .await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("private key"));

    let ids = cli.run(&["ssh-keys", "list", "-q"]).await;
    let first = generated["id"].as_str().unwrap();
    assert!(ids.lines().contains(&first));
    let deleted = cli.run(&["ssh-keys", "delete", first]).await;
    assert_eq!(deleted.ok(), format!("Deleted SSH key {first}\n"));
    assert_eq!(cli.run(&["ssh-keys", "show", first]).await.code, 4);
    server.stop().await;
}
