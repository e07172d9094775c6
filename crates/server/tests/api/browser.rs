//! The dashboard in a real browser (Debian's chromium through chromium-driver), run with
//! BARRACK_TEST_BROWSER=1: sign up, complete the profile, get credits, import an SSH key, deploy, watch
//! CREATING become ACTIVE without reloading, snapshot, stop, restore through the dialog, delete; every page
//! without console errors, without serious or critical axe-core violations, and usable 375 pixels wide.
//! Screenshots of each page go to `target/dashboard/`.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::common::webdriver::{Driver, Session, browser_tests_enabled};
use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(the_dashboard_in_a_browser);

/// axe-core 4.14.1 from its npm package (`axe-core`, `axe.min.js`, MPL-2.0).
const AXE: &str = include_str!("browser/axe.min.js");
const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoWyGxpx3MLdcrACj9lSSA6PPi9lG4V/xIZBbrCi1uR browser-test";
const PASSWORD: &str = "correct horse battery";

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard")
}

/// Runs axe-core on the page: the serious and critical violations, one line each.
async fn axe_violations(browser: &Session) -> Vec<String> {
    browser.script(AXE, json!([])).await;
    let found = browser
        .script_async(
            "var done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']}).then(function (r) {
               done(r.violations.filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                 .map(function (v) { return v.id + ': ' + v.nodes.map(function (n) { return n.target.join(' '); }).join(', '); }));
             }, function (e) { done(['axe failed: ' + e]); });",
        )
        .await;
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Checks the open page: no console errors, no serious accessibility violations; saves a screenshot.
async fn check_page(browser: &Session, name: &str) {
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{name}: console errors {errors:?}");
    let violations = axe_violations(browser).await;
    assert!(
        violations.is_empty(),
        "{name}: accessibility {violations:?}"
    );
    browser
        .screenshot(&shots().join(format!("{name}.png")))
        .await;
}

async fn status_is(browser: &Session, status: &str) {
    browser
        .wait_until(
            &format!("status {status}"),
            &format!("var s = document.getElementById('status'); return !!s && s.textContent === '{status}';"),
        )
        .await;
}

async fn submit(browser: &Session, form_action: &str) {
    browser
        .click(&format!(
            "form[action=\"{form_action}\"] button[type=submit]"
        ))
        .await;
}

async fn wait_path(browser: &Session, what: &str, condition: &str) {
    browser
        .wait_until(
            what,
            &format!("return document.readyState === 'complete' && ({condition});"),
        )
        .await;
}

async fn the_dashboard_in_a_browser(db: Db) {
    if !browser_tests_enabled(&format!("browser::the_dashboard_in_a_browser::{db:?}")) {
        return;
    }
    let app = TestApp::start(db).await;
    let base = app.base_url.clone();
    let driver = Driver::start().await;
    let browser = driver.session(1280, 900).await;

    // Sign up, then sign in in the advanced tier.
    browser.goto(&format!("{base}/signup")).await;
    check_page(&browser, "signup").await;
    browser.type_into("#name", "Browser User").await;
    browser.type_into("#email", "browser@example.com").await;
    browser.type_into("#password", PASSWORD).await;
    submit(&browser, "/signup").await;
    wait_path(
        &browser,
        "the account",
        "document.body.textContent.includes('Your account is ready')",
    )
    .await;
    check_page(&browser, "login").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#tier option[value=advanced]").await;
    submit(&browser, "/login").await;
    wait_path(&browser, "the overview", "location.pathname === '/'").await;
    check_page(&browser, "overview").await;

    // Complete the profile; an operator grants credits.
    browser.goto(&format!("{base}/account")).await;
    browser.type_into("#p-address_line", "1 Test Street").await;
    browser.type_into("#p-postal_code", "00100").await;
    browser.type_into("#p-country", "US").await;
    submit(&browser, "/account/profile").await;
    wait_path(
        &browser,
        "the saved profile",
        "document.body.textContent.includes('Profile saved.')",
    )
    .await;
    let account = app
        .services()
        .store()
        .account_by_email("browser@example.com")
        .await
        .unwrap()
        .unwrap();
    app.grant(&account.id, "500", barrack_api::Currency::USD)
        .await;
    browser.goto(&format!("{base}/account")).await;
    assert!(browser.text("main").await.contains("$500.00"));
    check_page(&browser, "account").await;

    // Import an SSH key.
    browser.goto(&format!("{base}/ssh-keys")).await;
    browser.type_into("#key-name", "k").await;
    browser.type_into("#public_key", PUBLIC_KEY).await;
    submit(&browser, "/ssh-keys").await;
    wait_path(
        &browser,
        "the key",
        "document.body.textContent.includes('SHA256:')",
    )
    .await;
    check_page(&browser, "ssh-keys").await;

    // Deploy from the deploy page, with the live quote.
    browser.goto(&format!("{base}/deploy")).await;
    browser.type_into("#instance_name", "browser-one").await;
    browser.click("#region option[value=FINLAND-1]").await;
    browser
        .click("#gpu_model option[value=H100-SXM5-80GB]")
        .await;
    wait_path(
        &browser,
        "the quote",
        "document.getElementById('quote').textContent.includes('per hour')",
    )
    .await;
    browser
        .click("#image_name option[value=\"Ubuntu 24.04 + CUDA 12.8 Open + Docker\"]")
        .await;
    browser.click("#ssh_key option:nth-child(2)").await;
    check_page(&browser, "deploy").await;
    submit(&browser, "/deploy").await;
    wait_path(
        &browser,
        "the instance page",
        "location.pathname.startsWith('/instances/BRK-')",
    )
    .await;
    let instance_path = browser.path().await;
    status_is(&browser, "CREATING").await;

    // The workers run; the page shows ACTIVE without being reloaded.
    browser
        .script("window.notReloaded = true;", json!([]))
        .await;
    app.settle().await;
    status_is(&browser, "ACTIVE").await;
    assert_eq!(
        browser
            .script("return window.notReloaded === true;", json!([]))
            .await,
        json!(true)
    );
    check_page(&browser, "instance").await;
    browser.screenshot(&shots().join("instance-page.png")).await;

    // Snapshot while ACTIVE, then stop (with confirmation).
    browser.type_into("#snap-name", "browser-snap").await;
    submit(&browser, &format!("{instance_path}/snapshot")).await;
    wait_path(
        &browser,
        "the snapshots",
        "location.pathname === '/snapshots'",
    )
    .await;
    app.settle().await;
    browser.goto(&format!("{base}{instance_path}")).await;
    browser
        .click(&format!(
            "form[action=\"{instance_path}/action\"] input[value=stop] ~ button"
        ))
        .await;
    browser.accept_alert().await;
    wait_path(&browser, "the stop", "!!document.getElementById('status')").await;
    app.settle().await;
    status_is(&browser, "SHUTOFF").await;

    // Restore the snapshot through the dialog into a new instance.
    browser.goto(&format!("{base}/snapshots")).await;
    browser
        .wait_until(
            "a restorable snapshot",
            "return !!document.querySelector('[data-open]');",
        )
        .await;
    browser.click("[data-open]").await;
    browser
        .wait_until(
            "the dialog",
            "return !!document.querySelector('dialog[open]');",
        )
        .await;
    check_page(&browser, "snapshots-restore").await;
    browser
        .type_into("dialog[open] input[name=instance_name]", "browser-restored")
        .await;
    browser.click("dialog[open] button[type=submit]").await;
    wait_path(
        &browser,
        "the restored instance",
        &format!("location.pathname.startsWith('/instances/BRK-') && location.pathname !== '{instance_path}'"),
    )
    .await;
    app.settle().await;
    status_is(&browser, "ACTIVE").await;
    assert!(browser.text("h1").await.contains("browser-restored"));
    let restored_path = browser.path().await;

    // Delete the first instance.
    browser.goto(&format!("{base}{instance_path}")).await;
    browser.click("button.danger").await;
    browser.accept_alert().await;
    wait_path(&browser, "the fleet", "location.pathname === '/instances'").await;
    app.settle().await;
    browser.goto(&format!("{base}/instances")).await;
    let fleet = browser.text("main").await;
    assert!(
        fleet.contains("browser-restored") && !fleet.contains("browser-one"),
        "{fleet}"
    );
    check_page(&browser, "instances").await;
    for page in ["volumes", "scripts", "firewalls", "snapshots", "images"] {
        browser.goto(&format!("{base}/{page}")).await;
        check_page(&browser, page).await;
    }
    // A volume's and a firewall's own pages.
    let mut own_pages = Vec::new();
    for (page, form) in [("volumes", "/volumes"), ("firewalls", "/firewalls")] {
        browser.goto(&format!("{base}/{page}")).await;
        browser.type_into("#name", "browser-thing").await;
        browser.click("#region option[value=FINLAND-1]").await;
        if page == "volumes" {
            browser.click("#volume_type option[value=NVMe]").await;
        }
        // The list's filter form has the same action; this is the creation form.
        browser
            .click(&format!(
                "form[method=post][action=\"{form}\"] button[type=submit]"
            ))
            .await;
        // The creation answers with the list: wait for it to show the new row, so that the next
        // navigation does not cut the form's submission short on a loaded machine.
        wait_path(
            &browser,
            &format!("the new row on /{page}"),
            "document.querySelector(\"td a[href^='/']\") !== null",
        )
        .await;
        app.settle().await;
        browser.goto(&format!("{base}/{page}")).await;
        browser.click("td a[href^='/']").await;
        wait_path(
            &browser,
            page,
            &format!("location.pathname.startsWith('/{page}/')"),
        )
        .await;
        check_page(&browser, &format!("{page}-one")).await;
        own_pages.push(browser.path().await);
    }
    // Credits: open a deposit, land on its checkout page, watch it complete without reloading.
    browser.goto(&format!("{base}/deposits")).await;
    check_page(&browser, "deposits").await;
    browser.type_into("#amount", "25").await;
    submit(&browser, "/deposits").await;
    wait_path(
        &browser,
        "the deposit's checkout",
        "location.pathname.startsWith('/deposits/BRK-')",
    )
    .await;
    let deposit_path = browser.path().await;
    status_is(&browser, "pending").await;
    check_page(&browser, "deposit").await;
    browser
        .script("window.notReloaded = true;", json!([]))
        .await;
    app.admin
        .admin_complete_deposit(deposit_path.trim_start_matches("/deposits/"))
        .await
        .unwrap();
    status_is(&browser, "completed").await;
    assert_eq!(
        browser
            .script("return window.notReloaded === true;", json!([]))
            .await,
        json!(true)
    );
    for page in ["transactions", "billing"] {
        browser.goto(&format!("{base}/{page}")).await;
        check_page(&browser, page).await;
    }
    // AI chat: the reply streams into the page, then what it cost.
    browser.goto(&format!("{base}/ai")).await;
    check_page(&browser, "ai").await;
    browser.type_into("#prompt", "What is a GPU?").await;
    browser.type_into("#max_tokens", "24").await;
    submit(&browser, "/ai/chat").await;
    browser
        .wait_until(
            "the streamed reply",
            "var b = document.getElementById('billed'); \
             return document.querySelectorAll('#transcript .msg.assistant').length === 1 \
               && !!b && b.textContent.indexOf('Last reply: ') === 0;",
        )
        .await;
    assert_eq!(browser.path().await, "/ai", "streamed in place");
    check_page(&browser, "ai-chat").await;
    browser.goto(&format!("{base}/no-such-page")).await;
    browser.console_errors().await; // The 404 itself is logged as a failed load.
    browser.quit().await;

    // A phone-sized window: every page fits its width.
    let phone = driver.session(375, 812).await;
    phone.goto(&format!("{base}/login")).await;
    let width = phone.script("return window.innerWidth;", json!([])).await;
    assert_eq!(width, json!(375), "the window is 375 CSS pixels wide");
    phone.type_into("#email", "browser@example.com").await;
    phone.type_into("#password", PASSWORD).await;
    phone.click("#tier option[value=advanced]").await;
    submit(&phone, "/login").await;
    wait_path(&phone, "the overview", "location.pathname === '/'").await;
    for page in [
        "",
        "instances",
        "deploy",
        "volumes",
        "snapshots",
        "ssh-keys",
        "scripts",
        "firewalls",
        "images",
        "account",
        "deposits",
        "transactions",
        "billing",
        "ai",
    ] {
        phone.goto(&format!("{base}/{page}")).await;
        let fits: Value = phone
            .script(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                json!([]),
            )
            .await;
        assert_eq!(fits, json!(true), "/{page} scrolls sideways at 375 px");
        let name = if page.is_empty() { "overview" } else { page };
        phone
            .screenshot(&shots().join(format!("375-{name}.png")))
            .await;
    }
    // An ACTIVE instance's page with its charts and forms, a volume's and a firewall's page.
    own_pages.push(restored_path);
    for path in &own_pages {
        phone.goto(&format!("{base}{path}")).await;
        let fits: Value = phone
            .script(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                json!([]),
            )
            .await;
        assert_eq!(fits, json!(true), "{path} scrolls sideways at 375 px");
        let name = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("page");
        phone
            .screenshot(&shots().join(format!("375-{name}-one.png")))
            .await;
    }
    let errors = phone.console_errors().await;
    assert!(errors.is_empty(), "console errors at 375 px: {errors:?}");
    phone.quit().await;

    // The operator pages, for an operator, at full width (axe) and at 375 px.
    app.admin
        .admin_create_user(&barrack_api::account::AdminCreateUser {
            email: "operator@example.com".into(),
            password: PASSWORD.into(),
            name: "Operator".into(),
            admin: true,
        })
        .await
        .unwrap();
    for (width, height) in [(1280, 900), (375, 812)] {
        let operator = driver.session(width, height).await;
        operator.goto(&format!("{base}/login")).await;
        operator.type_into("#email", "operator@example.com").await;
        operator.type_into("#password", PASSWORD).await;
        submit(&operator, "/login").await;
        wait_path(&operator, "the overview", "location.pathname === '/'").await;
        for page in [
            "operator",
            "operator/capacity",
            "operator/jobs",
            "operator/simulation",
        ] {
            operator.goto(&format!("{base}/{page}")).await;
            let name = format!("{width}-{}", page.replace('/', "-"));
            if width == 375 {
                let fits: Value = operator
                    .script(
                        "return document.documentElement.scrollWidth <= window.innerWidth;",
                        json!([]),
                    )
                    .await;
                assert_eq!(fits, json!(true), "/{page} scrolls sideways at 375 px");
                operator
                    .screenshot(&shots().join(format!("{name}.png")))
                    .await;
            } else {
                check_page(&operator, &name).await;
            }
        }
        operator.quit().await;
    }
    app.stop().await;
}
