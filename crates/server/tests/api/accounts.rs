use barrack_api::account::{ProfileUpdate, RegisterRequest, TokenObtainPair};
use barrack_api::{Currency, Tier};
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    register_login_and_refresh,
    sign_up_can_be_closed_by_the_operator,
    profile_validation_completeness_and_currency,
    api_keys_are_shown_once_and_revoked_at_once,
    operator_endpoints_need_an_operator,
);

async fn register_login_and_refresh(db: Db) {
    let app = TestApp::start(db).await;
    let anon = app.anonymous();
    let request = RegisterRequest {
        email: "Ada@Example.com".into(),
        password: "analytical engine".into(),
        name: "Ada Lovelace".into(),
    };
    let user = anon.register(&request).await.unwrap().data;
    assert_eq!(user.email, "ada@example.com");
    assert!(!user.profile_complete);
    assert!(!user.admin);
    let again = anon.register(&request).await.unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(409), Some("DUPLICATE_NAME"))
    );

    let bad = anon
        .register(&RegisterRequest {
            email: "nope".into(),
            password: "short".into(),
            name: "R2-D2".into(),
        })
        .await
        .unwrap_err();
    let fields = bad.field_errors().unwrap();
    assert!(
        fields.contains_key("email")
            && fields.contains_key("password")
            && fields.contains_key("name")
    );

    let wrong = anon
        .obtain_token(&TokenObtainPair {
            email: "ada@example.com".into(),
            password: "wrong password".into(),
            tier: None,
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.status(), Some(401));
    let pair = anon
        .obtain_token(&TokenObtainPair {
            email: "ADA@example.com".into(),
            password: "analytical engine".into(),
            tier: Some(Tier::Advanced),
        })
        .await
        .unwrap()
        .data;
    let session = anon.with_bearer(&pair.access);
    let profile = session.profile().await.unwrap();
    assert_eq!(profile.data.id, user.id);
    assert_eq!(profile.tier, Some(Tier::Advanced));

    // A refresh token is not an access token, and vice versa.
    assert_eq!(
        anon.with_bearer(&pair.refresh)
            .profile()
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    assert_eq!(
        anon.refresh_token(&pair.access).await.unwrap_err().status(),
        Some(401)
    );
    let access = anon.refresh_token(&pair.refresh).await.unwrap().data.access;
    assert_eq!(
        anon.with_bearer(access).profile().await.unwrap().data.id,
        user.id
    );
    let mut tampered = pair.access.clone();
    tampered.insert(tampered.len() - 2, 'x');
    assert_eq!(
        anon.with_bearer(tampered)
            .profile()
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    app.stop().await;
}

async fn sign_up_can_be_closed_by_the_operator(db: Db) {
    let app = TestApp::start_with(db, |c| c.open_signup = false).await;
    let err = app
        .anonymous()
        .register(&RegisterRequest {
            email: "a@example.com".into(),
            password: "long enough".into(),
            name: "Someone".into(),
        })
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(403), Some("FORBIDDEN")));
    // Closed whatever the body: the route is refused before what was sent is checked.
    for body in [json!({"zzz": 1}), json!({"email": "b@example.com"})] {
        let raw = app
            .anonymous()
            .raw(Method::POST, "/api/auth/register/", Some(&body))
            .await
            .unwrap();
        assert_eq!(raw.status, 403, "{}", raw.text);
    }
    // Operators still can.
    let (client, _) = app.user(Tier::Legacy).await;
    assert!(client.profile().await.is_ok());
    app.stop().await;
}

async fn profile_validation_completeness_and_currency(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    let initial = client.profile().await.unwrap().data;
    assert_eq!(initial.currency, Currency::USD);
    assert!(!initial.profile_complete);

    let bad = client
        .raw(
            Method::PATCH,
            "/api/account/profile/",
            Some(&json!({"name": "X", "postal_code": "12#45", "country": "Atlantis", "phone": "call me", "address_line": "a".repeat(256)})),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    for field in ["name", "postal_code", "country", "phone", "address_line"] {
        assert!(
            bad.body["errors"].get(field).is_some(),
            "{field}: {}",
            bad.body
        );
    }
    assert_eq!(
        bad.body["errors"]["name"][0],
        "Name must be between 2 and 100 characters"
    );
    // A terminal's escape sequence or a bell in an address is refused on its field, not stored.
    let controls = client
        .raw(
            Method::PATCH,
            "/api/account/profile/",
            Some(&json!({"address_line": "1 Main\u{1b}[31mRED\u{7}", "city": "Ber\rlin"})),
        )
        .await
        .unwrap();
    assert_eq!(controls.status, 400, "{}", controls.body);
    assert_eq!(
        controls.body["errors"]["address_line"][0],
        "Must not contain control characters such as U+001B"
    );
    assert_eq!(
        controls.body["errors"]["city"][0],
        "Must not contain control characters such as U+000D"
    );
    assert_eq!(
        client.profile().await.unwrap().data,
        initial,
        "a rejected update changes nothing"
    );

    let patch = ProfileUpdate {
        name: Some(Some("Priya O'Neil-Sharma".into())),
        address_line: Some(Some("12 MG Road".into())),
        postal_code: Some(Some("560 001".into())),
        country: Some(Some("in".into())),
        ..Default::default()
    };
    let complete = client.update_profile(&patch).await.unwrap().data;
    assert!(complete.profile_complete);
    assert_eq!(complete.country.as_deref(), Some("IN"));
    assert_eq!(complete.currency, Currency::INR);
    assert_eq!(client.balance().await.unwrap().data.currency, Currency::INR);

    let german = client
        .update_profile(&ProfileUpdate {
            country: Some(Some("DE".into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    assert_eq!(german.currency, Currency::EUR);
    assert_eq!(
        german.address_line.as_deref(),
        Some("12 MG Road"),
        "PATCH keeps absent fields"
    );

    // PUT replaces: absent fields are cleared, and name is required.
    let missing_name = client
        .replace_profile(&ProfileUpdate::default())
        .await
        .unwrap_err();
    assert!(missing_name.field_errors().unwrap().contains_key("name"));
    let replaced = client
        .replace_profile(&ProfileUpdate {
            name: Some(Some("Priya Sharma".into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    assert_eq!(replaced.address_line, None);
    assert!(!replaced.profile_complete);
    assert_eq!(replaced.currency, Currency::USD);

    let read_only = client
        .raw(
            Method::PATCH,
            "/api/account/profile/",
            Some(&json!({"email": "x@y.z"})),
        )
        .await
        .unwrap();
    assert_eq!(read_only.status, 400, "email is read-only");
    app.stop().await;
}

async fn api_keys_are_shown_once_and_revoked_at_once(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Advanced).await;
    let created = client
        .create_api_key("ci-runner", Tier::Legacy)
        .await
        .unwrap();
    assert_eq!(
        created.tier,
        Some(Tier::Advanced),
        "the envelope carries the calling key's tier"
    );
    let key = created.data;
    assert!(key.key.starts_with("sk_") && key.key.starts_with(&key.prefix));
    assert!(key.id.starts_with("BRK-") && key.id.ends_with('A'));

    let listed = client
        .raw(Method::GET, "/api/api-keys/", None)
        .await
        .unwrap();
    assert!(
        !listed.text.contains(&key.key),
        "the secret is never shown again"
    );
    assert_eq!(listed.body["data"]["api_keys"].as_array().unwrap().len(), 2);

    let second = client.with_api_key(&key.key);
    assert_eq!(second.profile().await.unwrap().tier, Some(Tier::Legacy));
    let dup = client
        .create_api_key("ci-runner", Tier::Legacy)
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Some("DUPLICATE_NAME"));
    let bad_name = client
        .create_api_key("no/slashes", Tier::Legacy)
        .await
        .unwrap_err();
    assert!(bad_name.field_errors().unwrap().contains_key("name"));

    // Another account cannot see or revoke it.
    let (other, _) = app.user(Tier::Legacy).await;
    assert_eq!(
        other.delete_api_key(&key.id).await.unwrap_err().status(),
        Some(404)
    );

    client.delete_api_key(&key.id).await.unwrap();
    let revoked = second.profile().await.unwrap_err();
    assert_eq!(
        (revoked.status(), revoked.code()),
        (Some(401), Some("AUTHENTICATION_FAILED"))
    );
    assert_eq!(
        client.delete_api_key(&key.id).await.unwrap_err().status(),
        Some(404)
    );
    let unknown = app
        .anonymous()
        .with_api_key("sk_not_a_real_key")
        .balance()
        .await
        .unwrap_err();
    assert_eq!(unknown.status(), Some(401));
    app.stop().await;
}

async fn operator_endpoints_need_an_operator(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    for (method, path) in [
        (Method::GET, "/api/admin/users/"),
        (Method::POST, "/api/admin/users/"),
        (Method::GET, "/api/admin/capacity/"),
        (Method::POST, "/api/admin/accounts/BRK-AAAAAAU/credits/"),
    ] {
        let raw = client
            .raw(method.clone(), path, Some(&json!({})))
            .await
            .unwrap();
        assert_eq!(raw.status, 403, "{method} {path}");
        assert_eq!(raw.body["code"], "FORBIDDEN");
    }
    let users = app
        .admin
        .admin_users(&Default::default())
        .await
        .unwrap()
        .data;
    assert_eq!(users.pagination.total, 2);
    assert_eq!(users.users.iter().filter(|u| u.profile.admin).count(), 1);
    app.stop().await;
}
