//! `barrackd admin`, run as an operator would: it works on an existing installation, names accounts by id
//! or email, and creates nothing when pointed at the wrong place.

use std::path::Path;
use std::process::{Command, Output};

use barrack_api::account::{AdminCreateUser, GrantCredits};
use barrack_api::{Currency, Tier};
use barrack_store::Store;

use crate::common::{Db, TestApp, TestDatabase};
use crate::on_both_databases;

on_both_databases!(
    admin_commands_name_accounts_by_id_or_email,
    admin_commands_create_no_installation,
    admin_commands_date_what_they_write_by_the_simulation_clock,
);

pub const SECRET: &str = "test-secret-with-enough-length-for-hmac";

/// `barrackd` with `args` and only the `env` given of Barrack's own variables.
pub fn barrackd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_barrackd"));
    for (name, _) in std::env::vars() {
        if name.starts_with("BARRACK_") {
            command.env_remove(name);
        }
    }
    command.args(args).envs(env.iter().copied());
    command.output().expect("barrackd runs")
}

pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs an admin task against the test server's database.
fn admin(app: &TestApp, task: &[&str]) -> Output {
    let dir = app.database.dir.display().to_string();
    let mut args = vec![
        "admin",
        "--data-dir",
        &dir,
        "--database-url",
        &app.database.url,
    ];
    args.extend_from_slice(task);
    barrackd(&args, &[("BARRACK_SECRET", SECRET)])
}

/// Runs an admin task against the test server's database; fails the test when the task fails.
fn admin_ok(app: &TestApp, task: &[&str]) -> String {
    let output = admin(app, task);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{task:?} failed: {stderr}");
    stdout
}

async fn admin_commands_name_accounts_by_id_or_email(db: Db) {
    let app = TestApp::start(db).await;
    let email = format!(
        "ada-{}@example.com",
        barrack_core::ids::random_alphanumeric(6).to_lowercase()
    );
    let user = app
        .admin
        .admin_create_user(&AdminCreateUser {
            email: email.clone(),
            password: "correct horse battery".into(),
            name: "Ada".into(),
            admin: false,
        })
        .await
        .unwrap()
        .data;
    assert!(admin_ok(&app, &["list-users"]).contains(&email));

    // barrackd admin: --user takes the id or the email; --email is the same option.
    let shouted = email.to_uppercase();
    for (n, (flag, name)) in [
        ("--user", user.id.as_str()),
        ("--user", email.as_str()),
        ("--email", user.id.as_str()),
        ("--email", shouted.as_str()),
    ]
    .into_iter()
    .enumerate()
    {
        let key_name = format!("ops-{n}");
        let key = admin_ok(&app, &["create-key", flag, name, "--name", &key_name]);
        let client = app.anonymous().with_api_key(key.trim());
        assert_eq!(client.profile().await.unwrap().data.id, user.id, "{name}");
        admin_ok(
            &app,
            &[
                "grant-credits",
                flag,
                name,
                "--amount",
                "1.50",
                "--currency",
                "USD",
            ],
        );
    }
    let balance = app
        .anonymous()
        .with_api_key(admin_ok(&app, &["create-key", "--user", &email, "--name", "b"]).trim())
        .balance()
        .await
        .unwrap()
        .data;
    assert_eq!(balance.balance, rust_decimal::Decimal::new(600, 2));

    // The API, which `barrack admin` calls, takes either too.
    for name in [user.id.as_str(), email.as_str()] {
        let created = app
            .admin
            .admin_create_api_key(name, &format!("api-{}", name.len()), Tier::Legacy)
            .await
            .unwrap()
            .data;
        assert_eq!(created.user_id, user.id);
        let grant = GrantCredits {
            amount: 1.into(),
            currency: Currency::USD,
            note: None,
        };
        app.admin.admin_grant_credits(name, &grant).await.unwrap();
    }

    // A disabled account gets no key from `barrackd admin` either: its keys stay revoked when it is
    // enabled again, and a key made meanwhile would come back to life then.
    app.admin.admin_disable_user(&user.id).await.unwrap();
    let disabled = admin(
        &app,
        &["create-key", "--user", &email, "--name", "meanwhile"],
    );
    assert_refused(&disabled, &["disabled"]);
    app.admin.admin_enable_user(&user.id).await.unwrap();

    let unknown = admin(
        &app,
        &["create-key", "--user", "nobody@example.com", "--name", "x"],
    );
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).1.contains("nobody@example.com"),
        "{}",
        text(&unknown).1
    );
    app.stop().await;
}

/// A simulating server runs at the clock offset stored in the database; `barrackd admin` follows it too:
/// a grant it made after the clock moved ten hours was dated ten hours before the API's grant made just
/// before it, so it sorted last in the newest-first ledger.
async fn admin_commands_date_what_they_write_by_the_simulation_clock(db: Db) {
    let app = TestApp::start_in_real_time(db, |_| {}).await;
    let (client, user_id) = app.funded_user(Tier::Advanced, "US", "10").await;
    app.admin.admin_advance_clock(600).await.unwrap();
    let grant = GrantCredits {
        amount: 1.into(),
        currency: Currency::USD,
        note: Some("api".into()),
    };
    app.admin
        .admin_grant_credits(&user_id, &grant)
        .await
        .unwrap();
    admin_ok(
        &app,
        &[
            "grant-credits",
            "--user",
            &user_id,
            "--amount",
            "2",
            "--currency",
            "USD",
        ],
    );
    let ledger = client
        .transactions(&Default::default())
        .await
        .unwrap()
        .data
        .transactions;
    let amounts: Vec<_> = ledger.iter().map(|t| t.amount.to_string()).collect();
    assert_eq!(amounts[..2], ["2", "1"], "newest first: {ledger:?}");
    assert!(ledger[0].created_at >= ledger[1].created_at, "{ledger:?}");
    app.stop().await;
}

fn assert_refused(output: &Output, says: &[&str]) {
    let (stdout, stderr) = text(output);
    assert!(!output.status.success(), "accepted: {stdout}");
    for words in says {
        assert!(stderr.contains(words), "{words:?} not in: {stderr}");
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn admin_commands_create_no_installation(db: Db) {
    let database = TestDatabase::create(db).await;
    let root = &database.dir;
    match db {
        Db::Sqlite => {
            // A directory that does not exist: named, and not created.
            let missing = root.join("no-such-data");
            let missing_text = missing.display().to_string();
            let output = barrackd(&["admin", "--data-dir", &missing_text, "list-users"], &[]);
            assert_refused(&output, &[&missing_text, "--data-dir", "BARRACK_DATA_DIR"]);
            assert!(!missing.exists(), "the data directory was created");

            // An empty directory: no database and no secret appear in it.
            let empty = root.join("empty");
            std::fs::create_dir_all(&empty).unwrap();
            let empty_text = empty.display().to_string();
            for task in [
                vec!["list-users"],
                vec!["create-key", "--user", "a@example.com", "--name", "k"],
            ] {
                let mut args = vec!["admin", "--data-dir", &empty_text];
                args.extend(task);
                assert_refused(&barrackd(&args, &[]), &[&empty_text, "--data-dir"]);
            }
            assert!(names_in(&empty).is_empty(), "{:?}", names_in(&empty));

            // An empty database file (not one a server set up) stays empty; a missing secret is not made.
            std::fs::write(empty.join("barrack.db"), b"").unwrap();
            let output = barrackd(&["admin", "--data-dir", &empty_text, "list-users"], &[]);
            assert_refused(&output, &["server.secret", &empty_text]);
            let output = barrackd(
                &["admin", "--data-dir", &empty_text, "list-users"],
                &[("BARRACK_SECRET", SECRET)],
            );
            assert_refused(&output, &["holds no Barrack installation", "--data-dir"]);
            assert_eq!(names_in(&empty), ["barrack.db"]);
            assert_eq!(
                std::fs::metadata(empty.join("barrack.db")).unwrap().len(),
                0
            );
        }
        Db::Postgres => {
            // A database no server set up: refused, and left without a schema.
            let dir = root.join("data").display().to_string();
            let output = barrackd(
                &[
                    "admin",
                    "--data-dir",
                    &dir,
                    "--database-url",
                    &database.url,
                    "list-users",
                ],
                &[("BARRACK_SECRET", SECRET)],
            );
            assert_refused(
                &output,
                &["holds no Barrack installation", "--database-url"],
            );
            let store = Store::connect(&database.url, 1).await.unwrap();
            assert!(!store.is_set_up().await.unwrap(), "the schema was created");
            store.close().await;

            // The database given but not the secret: the secret is what is asked for.
            let output = barrackd(
                &[
                    "admin",
                    "--data-dir",
                    &dir,
                    "--database-url",
                    &database.url,
                    "list-users",
                ],
                &[],
            );
            assert_refused(
                &output,
                &["server's secret", "BARRACK_SECRET", "--data-dir"],
            );
            assert!(
                !text(&output).1.contains("--database-url"),
                "{}",
                text(&output).1
            );

            // A database that does not exist, and a server that does not answer: one line naming the
            // database (no password to mask) and the cause, at once.
            let (base, name) = database.url.rsplit_once('/').unwrap();
            let missing = format!("{base}/{name}_missing");
            let unreachable = "postgres://postgres@127.0.0.1:1/barrack".to_string();
            for (url, cause) in [(&missing, "does not exist"), (&unreachable, "refused")] {
                let started = std::time::Instant::now();
                let output = barrackd(
                    &[
                        "admin",
                        "--data-dir",
                        &dir,
                        "--database-url",
                        url,
                        "list-users",
                    ],
                    &[("BARRACK_SECRET", SECRET)],
                );
                let stderr = text(&output).1;
                assert_refused(&output, &[&format!("cannot open the database {url}: ")]);
                assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
                assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
                assert!(!stderr.contains("line "), "{stderr}");
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(10),
                    "{stderr}"
                );
            }
        }
    }

    // Set up (migrated) but without accounts: list-users says so.
    let dir = root.join("data").display().to_string();
    let url = match db {
        Db::Sqlite => format!("sqlite://{}/barrack.db?mode=rwc", dir),
        Db::Postgres => database.url.clone(),
    };
    let env = [("BARRACK_SECRET", SECRET)];
    let migrated = barrackd(
        &["migrate", "--data-dir", &dir, "--database-url", &url],
        &env,
    );
    assert!(migrated.status.success(), "{}", text(&migrated).1);
    let listed = barrackd(
        &[
            "admin",
            "--data-dir",
            &dir,
            "--database-url",
            &url,
            "list-users",
        ],
        &env,
    );
    assert!(listed.status.success(), "{}", text(&listed).1);
    assert_eq!(text(&listed).0.trim(), "No accounts in this database.");
    database.drop_database().await;
}
