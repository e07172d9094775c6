//! The operator pages are a 404 page for everyone but operators.

use reqwest::StatusCode;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{Browser, account};

on_both_databases!(operator_pages_are_for_operators_only,);

async fn operator_pages_are_for_operators_only(db: Db) {
    let app = TestApp::start(db).await;
    let (user, user_id) = account(&app, false).await;
    let (operator, _) = account(&app, true).await;
    let mut b = Browser::signed_in(&app, &user).await;
    assert!(!b.get("/").await.body.contains("href=\"/operator\""));
    for path in [
        "/operator",
        "/operator?page=2",
        "/operator/capacity",
        "/operator/jobs",
        "/operator/jobs?show=dead",
        "/operator/simulation",
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.is_html());
    }
    for (path, fields) in [
        (
            "/operator/grants",
            vec![
                ("account", user.as_str()),
                ("amount", "10"),
                ("currency", "USD"),
            ],
        ),
        (
            "/operator/capacity",
            vec![
                ("region", "FINLAND-1"),
                ("gpu_model", "H100-SXM5-80GB"),
                ("total", "0"),
            ],
        ),
        ("/operator/clock", vec![("minutes", "60")]),
        (
            "/operator/faults",
            vec![
                ("kind", "fail_nth"),
                ("operation", "create_instance"),
                ("nth", "1"),
            ],
        ),
    ] {
        let page = b.post(path, &fields).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }

    let mut op = Browser::signed_in(&app, &operator).await;
    assert!(op.get("/").await.body.contains("href=\"/operator\""));
    for path in [
        "/operator",
        "/operator/capacity",
        "/operator/jobs",
        "/operator/jobs?show=dead",
        "/operator/simulation",
    ] {
        let page = op.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains(" style="));
    }
    assert!(op.get("/operator").await.body.contains(&user));

    // Credit grants: the API's messages at the fields, then a grant on the account's ledger.
    let bad = op
        .post(
            "/operator/grants",
            &[("account", &user), ("amount", "lots"), ("currency", "USD")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("id=\"amount-error\""));
    let bad = op
        .post(
            "/operator/grants",
            &[("account", &user), ("amount", "-5"), ("currency", "USD")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("id=\"amount-error\""), "{}", bad.body);
    // Amounts are read as the API reads them: an exponent is refused at the field, nothing granted.
    for amount in ["1e3", "1e9", "5e-1", "1E2", "+5", "1_000", ".5", "0x10"] {
        let bad = op
            .post(
                "/operator/grants",
                &[("account", &user), ("amount", amount), ("currency", "USD")],
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{amount}");
        assert!(bad.body.contains("id=\"amount-error\""), "{}", bad.body);
        assert!(
            bad.body.contains(&format!(
                "&#39;{amount}&#39; is not a decimal number: write digits, optionally a point"
            )),
            "{amount}: {}",
            bad.body
        );
    }
    let empty = op
        .post(
            "/operator/grants",
            &[("account", &user), ("amount", ""), ("currency", "USD")],
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(
        empty.body.contains("This field is required"),
        "{}",
        empty.body
    );
    assert!(
        b.get("/transactions")
            .await
            .body
            .contains("0 transactions<"),
        "no refused amount was granted"
    );
    let bad = op
        .post(
            "/operator/grants",
            &[
                ("account", "nobody@example.com"),
                ("amount", "5"),
                ("currency", "USD"),
            ],
        )
        .await;
    assert!(bad.body.contains("id=\"account-error\""), "{}", bad.body);
    let granted = op
        .post(
            "/operator/grants",
            &[
                ("account", &user),
                ("amount", "12.34"),
                ("currency", "USD"),
                ("note", "welcome"),
            ],
        )
        .await;
    assert_eq!(granted.status, StatusCode::SEE_OTHER, "{}", granted.body);
    assert!(op.get(granted.location()).await.body.contains("$12.34"));
    assert!(b.get("/account").await.body.contains("12.34"));
    // Credits in a second currency: the account page shows every currency held.
    let granted = op
        .post(
            "/operator/grants",
            &[("account", &user), ("amount", "3"), ("currency", "EUR")],
        )
        .await;
    assert_eq!(granted.status, StatusCode::SEE_OTHER, "{}", granted.body);
    let credits = b.get("/account").await;
    let all = credits
        .body
        .split(r#"id="balances">"#)
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("every currency on the account page: {}", credits.body));
    assert!(
        all.starts_with("All currencies: ") && all.contains("€3.00") && all.contains("$12.34"),
        "{all}"
    );
    let _ = user_id;

    // Capacity: set a total, and a refused one shown at its row.
    let bad = op
        .post(
            "/operator/capacity",
            &[
                ("region", "FINLAND-1"),
                ("gpu_model", "H100-SXM5-80GB"),
                ("total", "many"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("-error\""), "{}", bad.body);
    let set = op
        .post(
            "/operator/capacity",
            &[
                ("region", "FINLAND-1"),
                ("gpu_model", "H100-SXM5-80GB"),
                ("total", "321"),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    let capacity = app.admin.admin_capacity().await.unwrap().data.capacity;
    assert!(
        capacity
            .iter()
            .any(|c| c.region == "FINLAND-1" && c.gpu_model == "H100-SXM5-80GB" && c.total == 321)
    );

    // The clock and faults of the simulated data centre.
    let bad = op.post("/operator/clock", &[("minutes", "0")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("id=\"minutes-error\""));
    let advanced = op.post("/operator/clock", &[("minutes", "90")]).await;
    assert_eq!(advanced.status, StatusCode::SEE_OTHER, "{}", advanced.body);
    assert!(
        op.get(advanced.location())
            .await
            .body
            .contains("Clock advanced")
    );
    let bad = op.post("/operator/faults", &[("kind", "lose_host")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("id=\"host-error\""));
    let bad = op
        .post(
            "/operator/faults",
            &[("kind", "lose_host"), ("host", "no-such-host")],
        )
        .await;
    assert!(bad.body.contains("id=\"host-error\""));
    let injected = op
        .post(
            "/operator/faults",
            &[
                ("kind", "fail_nth"),
                ("operation", "create_instance"),
                ("nth", "3"),
            ],
        )
        .await;
    assert_eq!(injected.status, StatusCode::SEE_OTHER, "{}", injected.body);
    assert!(
        op.get(injected.location())
            .await
            .body
            .contains("Fault injected")
    );
    app.stop().await;
}
