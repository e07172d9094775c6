//! The README and docs/operating.md followed verbatim: their `sh` blocks run in order, as one shell
//! session, in an empty directory, with the binaries built from this tree, so the docs cannot drift from
//! the product. A block preceded by `<!-- docs-test: skip (why) -->` is not run.
//!
//! Only three things differ from a person at a terminal: `cargo run --release --bin barrackd -- serve`
//! starts the debug `barrackd` in the background (stopping the one before), `cargo install --path
//! crates/cli` is the `barrack` already built, and the server listens on a free port instead of 8080
//! (another server may hold it). `curl` fails on an error answer, so a command the docs show that the
//! server refuses fails the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const DOCS: [&str; 2] = ["README.md", "docs/operating.md"];
const SKIP_MARK: &str = "<!-- docs-test: skip";

/// The commands of every `sh` block of a Markdown text, in order, except those marked to be skipped.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = vec![];
    let mut lines = markdown.lines();
    let mut previous = "";
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            let info = line.trim_start().trim_start_matches('`').trim();
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.trim_start().starts_with("```"))
                .collect();
            if matches!(info, "sh" | "bash" | "shell") && !previous.starts_with(SKIP_MARK) {
                blocks.push(body.join("\n"));
            }
            previous = "";
            continue;
        }
        if !line.trim().is_empty() {
            previous = line.trim();
        }
    }
    blocks
}

/// What stands in for the parts of a person's set-up the docs assume (see the module's comment).
const PRELUDE: &str = r#"
set -euo pipefail
curl() { command curl --fail-with-body --show-error "$@"; echo; }
STARTS=0
SERVER_PID=
serve() {
  { set +x; } 2> /dev/null
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID"; wait "$SERVER_PID" || true; fi
  STARTS=$((STARTS + 1))
  barrackd serve > "server-$STARTS.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do
    command curl -sf "http://$BARRACK_LISTEN/api/health/live/" > /dev/null && { set -x; return 0; }
    sleep 0.1
  done
  echo "docs test: the server did not start" >&2
  cat "server-$STARTS.log" >&2
  return 1
}
cargo() {
  case "$*" in
    "run --release --bin barrackd -- serve") serve ;;
    "install --path crates/cli") command -v barrack > /dev/null ;;
    *) echo "docs test: no stand-in for cargo $*" >&2; return 1 ;;
  esac
}
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2> /dev/null; true' EXIT
set -x
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Prefixes of the variables cargo sets for a package's test run (not the user's cargo settings).
const PACKAGE_VARIABLES: &[&str] = &[
    "CARGO_MANIFEST_",
    "CARGO_PKG_",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_",
    "CARGO_CFG_",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
];

/// `barrack` next to `barrackd`, built now if this run did not build it (it belongs to another package).
/// The build is the workspace's test build, as `scripts/test` makes it: after that run it has nothing to
/// do, where a build of `barrack-cli` alone would unify other features and compile its dependencies
/// again (minutes on a fresh clone).
fn binaries() -> PathBuf {
    let barrackd = PathBuf::from(env!("CARGO_BIN_EXE_barrackd"));
    let dir = barrackd.parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["test", "--no-run", "--quiet", "--workspace"])
        .current_dir(workspace());
    // The variables cargo sets for this test describe its package; build scripts that watch them (ring's
    // does) would see them changed, rebuild, and relink the test binaries other tests are running from.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if PACKAGE_VARIABLES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            build.env_remove(&*name);
        }
    }
    let built = build.status().expect("run cargo build");
    assert!(built.success(), "cannot build barrack");
    assert!(dir.join("barrack").exists(), "no barrack in {dir:?}");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_readme_and_operating_guide_run_as_written() {
    let missing: Vec<&str> = ["bash", "curl", "jq", "openssl", "ssh-keygen"]
        .into_iter()
        .filter(|tool| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .collect();
    if !missing.is_empty() {
        crate::common::skipped(
            "docs",
            "docs::the_readme_and_operating_guide_run_as_written",
            &format!("the docs use {} (not installed)", missing.join(", ")),
        );
        return;
    }
    crate::common::ran(
        "docs",
        "docs::the_readme_and_operating_guide_run_as_written",
    );

    let port = free_port();
    let mut script = PRELUDE.to_string();
    for doc in DOCS {
        let text = std::fs::read_to_string(workspace().join(doc)).unwrap();
        let blocks = shell_blocks(&text);
        assert!(!blocks.is_empty(), "{doc} has no shell blocks");
        for block in blocks {
            script.push_str(&format!("\n# ---- {doc}\n"));
            script.push_str(&block.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")));
            script.push('\n');
        }
    }

    let dir = std::env::temp_dir().join(format!(
        "barrack-docs-{}",
        barrack_core::ids::random_alphanumeric(10)
    ));
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let path = format!(
        "{}:{}",
        binaries().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .args(["-c", &script])
        .current_dir(&work)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1")
        .env("BARRACK_LISTEN", format!("127.0.0.1:{port}"))
        .env("BARRACK_LOG", "warn");
    let output = command.output().expect("run bash");
    let logs: String = std::fs::read_dir(&work)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("server-"))
        .map(|e| {
            format!(
                "---- {}\n{}",
                e.file_name().to_string_lossy(),
                std::fs::read_to_string(e.path()).unwrap_or_default()
            )
        })
        .collect();
    assert!(
        output.status.success(),
        "the docs' commands failed ({})\n---- output\n{}\n---- commands\n{}\n{logs}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The instances the README deploys, by curl and by the CLI, both came up.
    assert!(
        stdout.contains("trainer") && stdout.contains("finetune"),
        "{stdout}"
    );
    // The deposit operating.md pays by webhook is completed.
    assert!(stdout.contains(r#""status":"completed""#), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn blocks_marked_skip_are_left_out() {
    let text = "a\n```sh\none\n```\n<!-- docs-test: skip (why) -->\n```sh\ntwo\n```\n```toml\nx\n```\n```sh\nthree\nfour\n```\n";
    assert_eq!(shell_blocks(text), ["one", "three\nfour"]);
}
