//! What the dashboard's pages show and do: another account's instance a 404 page, deploying and acting
//! on an instance, snapshots and restores, the API's messages at the fields, and short credits.

use barrack_api::Tier;
use barrack_api::instances::DeployRequest;
use reqwest::StatusCode;
use serde_json::json;

use super::{Browser, IMAGE, PASSWORD, account, funded_browser};
use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(
    another_accounts_instance_is_a_404_page,
    deploy_act_snapshot_and_restore_from_the_pages,
    bad_input_is_shown_at_the_fields,
    short_credits_are_a_message_with_a_link,
    error_pages_keep_the_signed_in_navigation,
);

async fn error_pages_keep_the_signed_in_navigation(db: Db) {
    let app = TestApp::start(db).await;
    // Signed out, a wrong method is a page too, with the pages' security headers.
    let mut anonymous = Browser::new(&app);
    let refused = anonymous.get("/logout").await;
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(refused.content_type().starts_with("text/html"));
    assert!(refused.body.contains("Not allowed") && refused.body.contains("Sign in"));

    let (email, _) = account(&app).await;
    let mut browser = Browser::new(&app);
    let token = browser.sign_in(&email, PASSWORD, "advanced").await;
    let pages = [
        (browser.get("/no-such-page").await, StatusCode::NOT_FOUND),
        (
            browser.get("/instances/BRK-NOPE").await,
            StatusCode::NOT_FOUND,
        ),
        (browser.get("/logout").await, StatusCode::METHOD_NOT_ALLOWED),
        (
            browser.post("/deposits/dep-x", &[("csrf", &token)]).await,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            browser.post("/volumes/vol-x/delete", &[]).await,
            StatusCode::FORBIDDEN,
        ),
        // U+0000 in an address, which PostgreSQL cannot compare, is refused before any page reads it.
        (
            browser.get("/instances?name=%00").await,
            StatusCode::BAD_REQUEST,
        ),
        (
            browser.get("/instances/BRK-XXXXXXX%00").await,
            StatusCode::BAD_REQUEST,
        ),
        (browser.get("/deposits/%00").await, StatusCode::BAD_REQUEST),
        (
            browser
                .post(
                    "/instances/BRK-X%00/action",
                    &[("csrf", &token), ("action", "stop")],
                )
                .await,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (page, status) in pages {
        assert_eq!(page.status, status, "{}", page.body);
        assert!(page.content_type().starts_with("text/html"), "{status}");
        assert_eq!(page.headers["x-frame-options"], "DENY");
        assert!(page.headers.contains_key("content-security-policy"));
        // The signed-in header: the main menu and the way out, not the sign-in links.
        assert!(
            page.body.contains(r#"<nav aria-label="Main">"#) && page.body.contains("Sign out"),
            "{status}: {}",
            page.body
        );
        assert!(!page.body.contains(">Sign up<"), "{status}: {}", page.body);
    }
    app.stop().await;
}

fn deploy_request(name: &str) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": name,
        "image_name": IMAGE, "ssh_key": "k"
    }))
    .unwrap()
}

async fn another_accounts_instance_is_a_404_page(db: Db) {
    let app = TestApp::start(db).await;
    let (owner, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    create_key_k(&owner).await;
    let theirs = owner.deploy(&deploy_request("theirs")).await.unwrap().data;
    app.settle().await;

    let (email, _) = account(&app).await;
    let mut browser = Browser::new(&app);
    let token = browser.sign_in(&email, PASSWORD, "advanced").await;
    let id = &theirs.instance_id;
    for path in [format!("/instances/{id}"), format!("/instances/{id}/live")] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.content_type().starts_with("text/html"));
        assert!(!page.body.contains("theirs"));
    }
    let acted = browser
        .post(
            &format!("/instances/{id}/action"),
            &[("csrf", &token), ("action", "stop")],
        )
        .await;
    assert_eq!(acted.status, StatusCode::NOT_FOUND);
    let batch = browser
        .post(
            "/instances/batch",
            &[("csrf", &token), ("batch_action", "hibernate"), ("id", id)],
        )
        .await;
    assert!(batch.body.contains("not found"), "{}", batch.body);
    assert_eq!(owner.instance(id).await.unwrap().data.status, "ACTIVE");

    // Unknown paths: a page for the dashboard, the JSON envelope for the API.
    let page = browser.get("/no-such-page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.content_type().starts_with("text/html"));
    let api = browser.get("/api/no-such-thing/").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.content_type().starts_with("application/json"));
    assert!(api.body.contains("NOT_FOUND"));
    app.stop().await;
}

async fn deploy_act_snapshot_and_restore_from_the_pages(db: Db) {
    let app = TestApp::start(db).await;
    let (mut browser, token, _) = funded_browser(&app, "100").await;

    let form = browser.get("/deploy").await;
    assert!(form.body.contains("FINLAND-1") && form.body.contains("H100-SXM5-80GB"));
    let quote = browser
        .get("/deploy/quote?gpu_model=H100-SXM5-80GB&gpu_count=2")
        .await;
    assert!(quote.body.contains("per hour"), "{}", quote.body);
    // A count the model is not sold in is said in the pricing service's words, not the envelope's.
    let odd = browser
        .get("/deploy/quote?gpu_model=H100-SXM5-80GB&gpu_count=3")
        .await;
    assert!(
        odd.body.contains("must be one of") && !odd.body.contains("Invalid request data"),
        "{}",
        odd.body
    );

    let deployed = browser
        .post(
            "/deploy",
            &[
                ("csrf", &token),
                ("instance_name", "web-one"),
                ("region", "FINLAND-1"),
                ("gpu_model", "H100-SXM5-80GB"),
                ("gpu_count", "1"),
                ("image_name", IMAGE),
                ("ssh_key", "k"),
                ("public_ip", "1"),
            ],
        )
        .await;
    assert_eq!(deployed.status, StatusCode::SEE_OTHER, "{}", deployed.body);
    let path = deployed.location().to_string();
    let id = path.trim_start_matches("/instances/").to_string();

    let creating = browser.get(&path).await;
    assert!(creating.body.contains(">CREATING<"));
    assert!(
        creating
            .body
            .contains(&format!(r#"hx-get="/instances/{id}/live""#)),
        "refreshes itself"
    );
    app.settle().await;
    let live = browser.get(&format!("{path}/live")).await;
    assert!(live.body.contains(">ACTIVE<"), "{}", live.body);
    assert!(
        !live.body.contains("hx-trigger"),
        "a stable state stops refreshing"
    );
    assert!(live.body.contains("ssh ubuntu@"));

    // Snapshot while ACTIVE, then stop.
    let snap = browser
        .post(
            &format!("{path}/snapshot"),
            &[("csrf", &token), ("name", "web-snap")],
        )
        .await;
    assert_eq!(snap.status, StatusCode::SEE_OTHER, "{}", snap.body);
    let stopped = browser
        .post(
            &format!("{path}/action"),
            &[("csrf", &token), ("action", "stop")],
        )
        .await;
    assert_eq!(stopped.status, StatusCode::SEE_OTHER);
    app.settle().await;
    let page = browser.get(&path).await;
    assert!(page.body.contains(">SHUTOFF<"), "{}", page.body);
    assert!(page.body.contains(r#"name="action" value="start""#));
    assert!(!page.body.contains(r#"name="action" value="stop""#));

    // Restore the snapshot through the dialog's form: the name rule first, then a new instance.
    let snapshots = browser.get("/snapshots").await;
    assert!(snapshots.body.contains("web-snap") && snapshots.body.contains("Restore Snapshot"));
    let start = snapshots.body.find("action=\"/snapshots/").unwrap() + "action=\"".len();
    let action = &snapshots.body[start..];
    let action = action[..action.find('"').unwrap()].replace("/delete", "/restore");
    let short = browser
        .post(&action, &[("csrf", &token), ("instance_name", "x")])
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(
        short.body.contains(r#"id="instance_name-error""#),
        "{}",
        short.body
    );
    let restored = browser
        .post(
            &action,
            &[("csrf", &token), ("instance_name", "web-restored")],
        )
        .await;
    assert_eq!(restored.status, StatusCode::SEE_OTHER, "{}", restored.body);
    let new_path = restored.location().to_string();
    assert_ne!(new_path, path);
    app.settle().await;
    let new_page = browser.get(&new_path).await;
    assert!(new_page.body.contains("web-restored") && new_page.body.contains(">ACTIVE<"));

    // Delete the first one (the confirmation is the browser's; the form carries the action).
    let deleted = browser
        .post(
            &format!("{path}/action"),
            &[("csrf", &token), ("action", "delete")],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(deleted.location(), "/instances");
    app.settle().await;
    assert_eq!(browser.get(&path).await.status, StatusCode::NOT_FOUND);

    // The fleet lists the restored instance; hibernate it as a batch.
    let fleet = browser.get("/instances?name=restored").await;
    assert!(fleet.body.contains("web-restored") && !fleet.body.contains("web-one"));
    let new_id = new_path.trim_start_matches("/instances/");
    // Nothing chosen: the list again with the message, a 400, nothing done.
    for (fields, message) in [
        (
            vec![],
            "Choose at least one instance. Choose hibernate, stop, start or snapshot.",
        ),
        (
            vec![("batch_action", "hibernate")],
            "Choose at least one instance.",
        ),
        (
            vec![("id", new_id)],
            "Choose hibernate, stop, start or snapshot.",
        ),
        (
            vec![("id", new_id), ("batch_action", "delete")],
            "Choose hibernate, stop, start or snapshot.",
        ),
    ] {
        let mut form = vec![("csrf", token.as_str())];
        form.extend(fields);
        let refused = browser.post("/instances/batch", &form).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        assert!(
            refused.body.contains(&format!(
                r#"<div class="alert" role="alert"><p>{message}</p>"#
            )),
            "{message}: {}",
            refused.body
        );
        assert!(refused.body.contains("<h1>Instances</h1>"));
        assert!(!refused.body.contains("Batch operation"));
    }
    // Two batch snapshots of one instance in the same second get names of their own.
    for _ in 0..2 {
        let snapshot = browser
            .post(
                "/instances/batch",
                &[
                    ("csrf", &token),
                    ("batch_action", "snapshot"),
                    ("id", new_id),
                ],
            )
            .await;
        assert_eq!(snapshot.status, StatusCode::OK, "{}", snapshot.body);
        assert!(
            snapshot.body.contains("Snapshot ") && !snapshot.body.contains("already exists"),
            "{}",
            snapshot.body
        );
    }
    app.settle().await;
    let batch = browser
        .post(
            "/instances/batch",
            &[
                ("csrf", &token),
                ("batch_action", "hibernate"),
                ("id", new_id),
            ],
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    assert!(batch.body.contains("HIBERNATING"));
    app.settle().await;
    let overview = browser.get("/").await;
    assert!(overview.body.contains("Hibernated"));
    app.stop().await;
}

async fn bad_input_is_shown_at_the_fields(db: Db) {
    let app = TestApp::start(db).await;
    let (mut browser, token, _) = funded_browser(&app, "100").await;
    let refused = browser
        .post(
            "/deploy",
            &[
                ("csrf", &token),
                ("instance_name", "!"),
                ("region", "FINLAND-1"),
                ("gpu_model", "H100-SXM5-80GB"),
                ("gpu_count", "1"),
                ("image_name", IMAGE),
                ("ssh_key", "k"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains(r#"id="instance_name-error""#),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(r#"aria-invalid="true""#));
    assert!(
        refused.body.contains(r#"value="!""#),
        "what was typed is kept"
    );

    // Nothing chosen: every field is asked for at once, with the page's words, naming no model the
    // page does not offer.
    let empty = browser
        .post(
            "/deploy",
            &[
                ("csrf", &token),
                ("instance_name", ""),
                ("region", ""),
                ("gpu_model", ""),
                ("gpu_count", "1"),
                ("image_name", ""),
            ],
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.body);
    for expected in [
        r#"<p class="field-error" id="region-error">Choose a region.</p>"#,
        r#"<p class="field-error" id="gpu_model-error">Choose a GPU model.</p>"#,
        r#"id="instance_name-error""#,
    ] {
        assert!(empty.body.contains(expected), "{expected}: {}", empty.body);
    }
    assert!(!empty.body.contains("Valid values"), "{}", empty.body);

    // A key or a script that is not there is the form again with the message at its field, not the
    // page for a missing page.
    for (field, value) in [("ssh_key", "BRK-NOPE00K"), ("script_id", "BRK-NOPE00C")] {
        let mut form = vec![
            ("csrf", token.as_str()),
            ("instance_name", "web-1"),
            ("region", "FINLAND-1"),
            ("gpu_model", "H100-SXM5-80GB"),
            ("gpu_count", "1"),
            ("image_name", IMAGE),
            ("ssh_key", "k"),
        ];
        form.retain(|(name, _)| *name != field);
        form.push((field, value));
        let missing = browser.post("/deploy", &form).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{field}");
        assert!(
            missing.body.contains(&format!(r#"id="{field}-error""#))
                && missing.body.contains(r#"value="web-1""#),
            "{field}: {}",
            missing.body
        );
    }

    // An imported key is redirected to the list (a refresh does not post it again); its name given
    // again is the form with the message at the name.
    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoWyGxpx3MLdcrACj9lSSA6PPi9lG4V/xIZBbrCi1uR laptop";
    let import = [
        ("csrf", token.as_str()),
        ("name", "laptop"),
        ("mode", "import"),
        ("public_key", key),
    ];
    let imported = browser.post("/ssh-keys", &import).await;
    assert_eq!(imported.status, StatusCode::SEE_OTHER, "{}", imported.body);
    assert_eq!(imported.location(), "/ssh-keys");
    let again = browser.post("/ssh-keys", &import).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.body.contains(r#"id="key-name-error""#),
        "{}",
        again.body
    );

    // A cloud-init over the API's limit is a message at the textarea, said with the form's label.
    let deploy = |extra: Vec<(&'static str, String)>| {
        let mut form: Vec<(&str, String)> = vec![
            ("csrf", token.clone()),
            ("instance_name", "web-2".into()),
            ("region", "FINLAND-1".into()),
            ("gpu_model", "H100-SXM5-80GB".into()),
            ("gpu_count", "1".into()),
            ("image_name", IMAGE.into()),
            ("ssh_key", "k".into()),
        ];
        for (name, value) in extra {
            form.retain(|(n, _)| *n != name);
            form.push((name, value));
        }
        form
    };
    let too_long = deploy(vec![(
        "cloud_init",
        format!("#cloud-config\n{}", "a".repeat(70_000)),
    )]);
    let form: Vec<(&str, &str)> = too_long.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = browser.post("/deploy", &form).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        refused
            .body
            .contains(r#"aria-invalid="true" aria-describedby="cloud_init-error""#),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains(
            r#"<p class="field-error" id="cloud_init-error">Cloud-init must be 16384 bytes or less.</p>"#
        ),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains(r#"role="alert"><p>cloud_init"#));

    // Messages that name several fields, or regions, are said as the form shows them: no internal
    // names, only the regions the session's tier offers, a choice asked for when there is none.
    for (extra, field, message) in [
        (
            vec![("image_name", String::new())],
            "image_name",
            "Choose a boot image, or a volume to boot from.",
        ),
        (
            vec![("region", String::new())],
            "region",
            "Choose a region.",
        ),
        (
            vec![("region", "MARS-1".to_string())],
            "region",
            "Unknown region &#39;MARS-1&#39;. Choose one of FINLAND-1",
        ),
    ] {
        let form = deploy(extra);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = browser.post("/deploy", &form).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{message}");
        let at = format!(r#"<p class="field-error" id="{field}-error">{message}"#);
        assert!(refused.body.contains(&at), "{at}: {}", refused.body);
        assert!(!refused.body.contains("image_name is"), "{}", refused.body);
        assert!(!refused.body.contains("CANADA"), "{}", refused.body);
    }

    let not_a_number = browser
        .post("/deploy", &[("csrf", &token), ("gpu_count", "two")])
        .await;
    assert_eq!(not_a_number.status, StatusCode::BAD_REQUEST);
    assert!(
        not_a_number
            .body
            .contains("GPU count must be a whole number")
    );

    let bad_country = browser
        .post(
            "/account/profile",
            &[
                ("csrf", &token),
                ("name", "Web User"),
                ("country", "Narnia"),
            ],
        )
        .await;
    assert_eq!(bad_country.status, StatusCode::BAD_REQUEST);
    assert!(bad_country.body.contains(r#"id="p-country-error""#));

    app.stop().await;
}

async fn short_credits_are_a_message_with_a_link(db: Db) {
    let app = TestApp::start(db).await;
    let (mut browser, token, _) = funded_browser(&app, "0").await;
    let refused = browser
        .post(
            "/deploy",
            &[
                ("csrf", &token),
                ("instance_name", "poor"),
                ("region", "FINLAND-1"),
                ("gpu_model", "H100-SXM5-80GB"),
                ("gpu_count", "1"),
                ("image_name", IMAGE),
                ("ssh_key", "k"),
            ],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        refused.body
    );
    assert!(refused.body.contains(r#"href="/account#credits""#));
    // Money as the page shows it, not the API's "0 USD".
    assert!(
        refused
            .body
            .contains("Insufficient balance: $0.00 available"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains(" USD"), "{}", refused.body);
    assert!(
        browser
            .get("/instances")
            .await
            .body
            .contains("No instances match.")
    );
    app.stop().await;
}
