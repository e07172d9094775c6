//! Session tokens: refresh tokens are spent on use and a reused one ends its whole log-in; log-out,
//! password changes and an operator's disable revoke what they should, at once.

use barrack_api::Tier;
use barrack_api::account::{TokenObtainPair, TokenPair};
use barrack_client::{Client, ClientError};

use crate::common::{Db, ORDINARY_PASSWORD, TestApp, ordinary_account};
use crate::on_both_databases;

on_both_databases!(
    refresh_tokens_rotate_and_a_reused_one_ends_the_session,
    concurrent_uses_of_one_refresh_token_leave_no_session,
    logging_out_ends_that_session_only,
    changing_the_password_ends_every_session_and_keeps_keys,
    disabling_an_account_revokes_sessions_and_keys_at_once,
);

const PASSWORD: &str = ORDINARY_PASSWORD;

/// A new ordinary account: its id, email and a client on an API key of it.
async fn account(app: &TestApp) -> (String, String, Client) {
    ordinary_account(app, "session", Tier::Legacy).await
}

async fn log_in(app: &TestApp, email: &str, password: &str) -> Result<TokenPair, ClientError> {
    app.anonymous()
        .obtain_token(&TokenObtainPair {
            email: email.into(),
            password: password.into(),
            tier: None,
        })
        .await
        .map(|e| e.data)
}

async fn assert_refused(app: &TestApp, access: &str, what: &str) {
    let e = app.admin.with_bearer(access).profile().await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{what}: {e}");
}

async fn assert_refresh_refused(app: &TestApp, refresh: &str, what: &str) {
    let e = app.anonymous().refresh_token(refresh).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(401), Some("AUTHENTICATION_FAILED")),
        "{what}: {e}"
    );
}

/// Each refresh spends the token presented and hands back its successor; the spent token presented again
/// (someone kept a copy) revokes the whole log-in: the successor and every access token of it. Another
/// log-in of the same account goes on.
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session(db: Db) {
    let app = TestApp::start(db).await;
    let (_, email, _) = account(&app).await;
    let first = log_in(&app, &email, PASSWORD).await.unwrap();
    let other = log_in(&app, &email, PASSWORD).await.unwrap();

    let second = app
        .anonymous()
        .refresh_token(&first.refresh)
        .await
        .unwrap()
        .data;
    assert_ne!(second.refresh, first.refresh, "a new refresh token");
    app.admin
        .with_bearer(&second.access)
        .profile()
        .await
        .unwrap();
    let third = app
        .anonymous()
        .refresh_token(&second.refresh)
        .await
        .unwrap()
        .data;
    app.admin
        .with_bearer(&first.access)
        .profile()
        .await
        .unwrap();

    // The first refresh token again: a reuse.
    assert_refresh_refused(&app, &first.refresh, "a spent refresh token").await;
    assert_refresh_refused(
        &app,
        &third.refresh,
        "the newest token of a revoked session",
    )
    .await;
    assert_refused(&app, &first.access, "the first access token").await;
    assert_refused(&app, &third.access, "the newest access token").await;

    app.admin
        .with_bearer(&other.access)
        .profile()
        .await
        .unwrap();
    app.anonymous()
        .refresh_token(&other.refresh)
        .await
        .expect("another log-in is untouched");

    assert_refresh_refused(&app, "not.a.token", "garbage").await;
    assert_refresh_refused(&app, &other.access, "an access token as refresh token").await;
    app.stop().await;
}

/// Twenty refreshes of one token at once: at most one gets a successor, and since the others are reuses,
/// the log-in ends, successor included.
async fn concurrent_uses_of_one_refresh_token_leave_no_session(db: Db) {
    let app = TestApp::start(db).await;
    let (_, email, _) = account(&app).await;
    let pair = log_in(&app, &email, PASSWORD).await.unwrap();
    let uses: Vec<_> = (0..20)
        .map(|_| {
            let client = app.anonymous();
            let refresh = pair.refresh.clone();
            tokio::spawn(async move { client.refresh_token(&refresh).await })
        })
        .collect();
    let mut successors = Vec::new();
    for use_ in uses {
        match use_.await.unwrap() {
            Ok(e) => successors.push(e.data),
            Err(e) => assert_eq!(e.status(), Some(401), "{e}"),
        }
    }
    assert!(successors.len() <= 1, "{} successors", successors.len());
    for successor in &successors {
        assert_refused(&app, &successor.access, "the successor of a reused token").await;
        assert_refresh_refused(&app, &successor.refresh, "the successor's refresh token").await;
    }
    assert_refused(&app, &pair.access, "the log-in's access token").await;
    app.stop().await;
}

/// Log-out revokes the refresh token's log-in (its access tokens too) and nothing else.
async fn logging_out_ends_that_session_only(db: Db) {
    let app = TestApp::start(db).await;
    let (_, email, by_key) = account(&app).await;
    let leaving = log_in(&app, &email, PASSWORD).await.unwrap();
    let staying = log_in(&app, &email, PASSWORD).await.unwrap();

    let ended = app.anonymous().logout(&leaving.refresh).await.unwrap().data;
    assert_eq!(ended.sessions_revoked, 1);
    assert_refused(&app, &leaving.access, "a logged-out access token").await;
    assert_refresh_refused(&app, &leaving.refresh, "a logged-out refresh token").await;
    let again = app.anonymous().logout(&leaving.refresh).await.unwrap().data;
    assert_eq!(
        again.sessions_revoked, 0,
        "logging out twice ends nothing more"
    );

    app.admin
        .with_bearer(&staying.access)
        .profile()
        .await
        .unwrap();
    by_key.profile().await.unwrap();
    let bad = app.anonymous().logout("not-a-token").await.unwrap_err();
    assert_eq!(bad.status(), Some(401), "{bad}");
    app.stop().await;
}

/// A password change needs the current password, ends every log-in of the account (the caller's too) and
/// leaves its API keys working; the old password no longer logs in.
async fn changing_the_password_ends_every_session_and_keeps_keys(db: Db) {
    let app = TestApp::start(db).await;
    let (_, email, by_key) = account(&app).await;
    let (_, _, stranger) = account(&app).await;
    let caller = log_in(&app, &email, PASSWORD).await.unwrap();
    let elsewhere = log_in(&app, &email, PASSWORD).await.unwrap();
    let by_token = app.admin.with_bearer(&caller.access);

    let wrong = by_token
        .change_password("not the password", "a brand new password")
        .await
        .unwrap_err();
    assert_eq!(wrong.status(), Some(400), "{wrong}");
    assert!(
        wrong
            .field_errors()
            .unwrap()
            .contains_key("current_password")
    );
    let short = by_token
        .change_password(PASSWORD, "short")
        .await
        .unwrap_err();
    assert!(short.field_errors().unwrap().contains_key("new_password"));
    by_token
        .profile()
        .await
        .expect("a refused change ends nothing");

    let ended = by_token
        .change_password(PASSWORD, "a brand new password")
        .await
        .unwrap()
        .data;
    assert_eq!(ended.sessions_revoked, 2);
    for pair in [&caller, &elsewhere] {
        assert_refused(&app, &pair.access, "an access token from before the change").await;
        assert_refresh_refused(
            &app,
            &pair.refresh,
            "a refresh token from before the change",
        )
        .await;
    }
    by_key.profile().await.expect("API keys stay");
    stranger.profile().await.unwrap();
    let old = log_in(&app, &email, PASSWORD).await.unwrap_err();
    assert_eq!(old.status(), Some(401), "{old}");
    let new = log_in(&app, &email, "a brand new password").await.unwrap();
    app.admin.with_bearer(&new.access).profile().await.unwrap();
    app.stop().await;
}

/// An operator's disable revokes the account's log-ins and API keys in one step, and the account can no
/// longer log in; enabling it lets it log in again (the revoked keys stay revoked). Operators cannot
/// disable themselves, and an ordinary account cannot disable anyone.
async fn disabling_an_account_revokes_sessions_and_keys_at_once(db: Db) {
    let app = TestApp::start(db).await;
    let (id, email, by_key) = account(&app).await;
    let (other_id, other_email, other) = account(&app).await;
    let pair = log_in(&app, &email, PASSWORD).await.unwrap();

    let refused = by_key.admin_disable_user(&other_id).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    other.profile().await.unwrap();

    let access = app.admin.admin_disable_user(&id).await.unwrap().data;
    assert!(access.disabled);
    assert_eq!((access.sessions_revoked, access.api_keys_revoked), (1, 1));
    let e = by_key.profile().await.unwrap_err();
    assert_eq!(e.status(), Some(401), "the key: {e}");
    assert_refused(&app, &pair.access, "the access token").await;
    assert_refresh_refused(&app, &pair.refresh, "the refresh token").await;
    let e = log_in(&app, &email, PASSWORD).await.unwrap_err();
    assert_eq!(e.status(), Some(401), "log-in of a disabled account: {e}");
    // No key is made for it: one would work again once the account is enabled.
    let e = app
        .admin
        .admin_create_api_key(&id, "after", Tier::Legacy)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409), "a key for a disabled account: {e}");
    other.profile().await.expect("other accounts go on");
    // Operators see which accounts are disabled.
    let users = app
        .admin
        .admin_users(&barrack_api::PageQuery::default())
        .await
        .unwrap()
        .data
        .users;
    let disabled: Vec<&str> = users
        .iter()
        .filter(|u| u.disabled)
        .map(|u| u.profile.id.as_str())
        .collect();
    assert_eq!(disabled, [id.as_str()]);

    let admin_id = app.admin.profile().await.unwrap().data.id;
    let own = app.admin.admin_disable_user(&admin_id).await.unwrap_err();
    assert_eq!(own.status(), Some(409), "{own}");
    let missing = app
        .admin
        .admin_disable_user("BRK-NOSUCH1")
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");
    // Named by email, as in every admin path, in any case.
    let by_email = app
        .admin
        .admin_disable_user(&other_email.to_uppercase())
        .await
        .unwrap()
        .data;
    assert!(by_email.disabled);
    let e = other.profile().await.unwrap_err();
    assert_eq!(e.status(), Some(401), "disabled by email: {e}");
    let admin_email = app.admin.profile().await.unwrap().data.email;
    let own = app
        .admin
        .admin_disable_user(&admin_email)
        .await
        .unwrap_err();
    assert_eq!(own.status(), Some(409), "{own}");
    assert!(
        !app.admin
            .admin_enable_user(&other_email)
            .await
            .unwrap()
            .data
            .disabled
    );

    let enabled = app.admin.admin_enable_user(&id).await.unwrap().data;
    assert!(!enabled.disabled);
    let pair = log_in(&app, &email, PASSWORD).await.unwrap();
    app.admin.with_bearer(&pair.access).profile().await.unwrap();
    let e = by_key.profile().await.unwrap_err();
    assert_eq!(e.status(), Some(401), "revoked keys stay revoked: {e}");
    let key = app
        .admin
        .admin_create_api_key(&id, "after", Tier::Legacy)
        .await
        .unwrap()
        .data;
    app.admin
        .with_api_key(&key.key.key)
        .profile()
        .await
        .expect("a key made once enabled");
    app.stop().await;
}
