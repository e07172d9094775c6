//! Startup scripts from files: create, list, update, and one or several deleted at once.

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_from_files() {
    let server = TestServer::start().await;
    let cli = server.barrack();
    let file = server.dir.join("setup.sh");
    std::fs::write(&file, "#!/bin/sh\nnvidia-smi\n").unwrap();
    let path = file.to_str().unwrap();

    let first = cli
        .run(&["scripts", "create", "--name", "setup", "--file", path, "-q"])
        .await;
    let first = first.ok().trim().to_string();
    assert!(first.starts_with("BRK-") && first.ends_with('C'));
    let shown = cli
        .run(&["scripts", "show", &first, "-o", "json"])
        .await
        .json();
    assert_eq!(shown["script"], "#!/bin/sh\nnvidia-smi\n");
    assert_eq!(shown["size_bytes"], 21);
    // The content printed whole, with its line breaks, under the fields.
    let text = cli.run(&["scripts", "show", &first]).await;
    assert!(
        text.ok().ends_with("\n\n#!/bin/sh\nnvidia-smi\n") && !text.ok().contains("\\n"),
        "{text:?}"
    );

    std::fs::write(&file, "echo v2\n").unwrap();
    let updated = cli
        .run(&[
            "scripts", "update", &first, "--name", "setup-v2", "--file", path, "-o", "json",
        ])
        .await
        .json();
    assert_eq!(
        (updated["name"].as_str(), updated["script"].as_str()),
        (Some("setup-v2"), Some("echo v2\n"))
    );
    let second = cli
        .run(&["scripts", "create", "--name", "other", "--file", path, "-q"])
        .await
        .ok()
        .trim()
        .to_string();
    // Created in the same millisecond of the test clock, so compared as a set.
    let listed = cli.run(&["scripts", "list", "-q"]).await;
    let mut listed = listed.lines();
    listed.sort();
    let mut expected = [first.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(listed, expected);

    let bad = cli
        .run(&["scripts", "create", "--name", "bad/name", "--file", path])
        .await;
    assert_eq!(bad.code, 6, "{bad:?}");
    assert!(bad.stderr.contains("name:"), "{}", bad.stderr);

    // A page past the end says so.
    let past = cli.run(&["scripts", "list", "--page", "2"]).await;
    assert_eq!(past.ok(), "Page 2 is past the end: 2 in all, on page 1\n");

    let deleted = cli
        .run(&["scripts", "delete", &first, &second, "BRK-NOPE00C"])
        .await;
    // Those found are deleted and said so on stdout; one not found is a failure all the same, as with
    // one id: an error on stderr, exit code 4.
    assert_eq!(deleted.code, 4, "{deleted:?}");
    let mut lines: Vec<&str> = deleted.stdout.lines().collect();
    lines.sort();
    let mut expected = [
        format!("Deleted script {first}"),
        format!("Deleted script {second}"),
    ];
    expected.sort();
    assert_eq!(lines, expected, "{deleted:?}");
    assert_eq!(
        deleted.stderr, "error: script not found: BRK-NOPE00C\n",
        "{deleted:?}"
    );
    // With -q, the ids deleted; with -o json, the API's answer; the failure is reported all the same.
    let third = cli
        .run(&["scripts", "create", "--name", "third", "--file", path, "-q"])
        .await
        .ok()
        .trim()
        .to_string();
    let quiet = cli
        .run(&[
            "scripts",
            "delete",
            &third,
            "BRK-NOPE00C",
            "BRK-NOPE11C",
            "-q",
        ])
        .await;
    assert_eq!(
        (quiet.code, quiet.stdout.as_str(), quiet.stderr.as_str()),
        (
            4,
            format!("{third}\n").as_str(),
            "error: scripts not found: BRK-NOPE00C, BRK-NOPE11C\n"
        ),
    );
    let none = cli
        .run(&[
            "scripts",
            "delete",
            "BRK-NOPE00C",
            "BRK-NOPE11C",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(none.code, 4, "{none:?}");
    let answer: serde_json::Value = serde_json::from_str(&none.stdout).unwrap();
    assert_eq!(answer["deleted"], serde_json::json!([]));
    assert!(cli.run(&["scripts", "list", "-q"]).await.lines().is_empty());
    server.stop().await;
}
