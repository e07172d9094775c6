//! Signing in and out of the dashboard: sessions in cookies, the page asked for, forms refused without
//! the session's token, signing up, and failed passwords counted with the API's log-ins.

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;

use super::{Browser, IMAGE, PASSWORD, account};
use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    signing_in_opens_a_session_and_signing_out_ends_it,
    signing_in_returns_to_the_page_asked_for,
    forms_without_the_sessions_token_are_refused,
    sign_up_then_sign_in,
    failed_sign_ins_are_held_back_with_the_apis,
    sign_ins_sent_at_once_get_no_more_password_checks_than_the_limit,
);

async fn signing_in_opens_a_session_and_signing_out_ends_it(db: Db) {
    let app = TestApp::start(db).await;
    let (email, _) = account(&app).await;
    let mut browser = Browser::new(&app);

    let anonymous = browser.get("/").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.location(), "/login");

    let form = browser.get("/login").await;
    let token = form.csrf();
    let wrong = browser
        .post(
            "/login",
            &[
                ("csrf", &token),
                ("email", &email),
                ("password", "wrong horse battery"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Invalid email or password"));
    assert!(!browser.cookies.contains_key("barrack_session"));
    // The right password with a tier the form does not offer: the form is at fault, not the credentials.
    let odd_tier = browser
        .post(
            "/login",
            &[
                ("csrf", &token),
                ("email", &email),
                ("password", PASSWORD),
                ("tier", "gold"),
            ],
        )
        .await;
    assert_eq!(
        odd_tier.status,
        StatusCode::BAD_REQUEST,
        "{}",
        odd_tier.body
    );
    assert!(
        odd_tier
            .body
            .contains("Choose the legacy or the advanced tier")
    );
    assert!(!browser.cookies.contains_key("barrack_session"));

    let signed = browser
        .post(
            "/login",
            &[
                ("csrf", &token),
                ("email", &email),
                ("password", PASSWORD),
                ("tier", "legacy"),
            ],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    let cookie = signed
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("barrack_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let session = browser.cookies["barrack_session"].clone();

    let overview = browser.get("/").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.content_type().starts_with("text/html"));
    assert!(overview.body.contains("Overview") && overview.body.contains("Web User"));
    let csp = overview.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    // A path nothing serves is a page with the same protections.
    let nowhere = browser.get("/nowhere/at/all").await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    for header in [
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
    ] {
        assert_eq!(
            nowhere.headers.get(header),
            overview.headers.get(header),
            "{header}"
        );
    }

    let out = browser.post("/logout", &[("csrf", &overview.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login");
    assert!(!browser.cookies.contains_key("barrack_session"));

    // The old cookie is dead on the server too, not just forgotten by the browser.
    browser
        .cookies
        .insert("barrack_session".into(), session.clone());
    let replayed = browser.get("/instances").await;
    assert_eq!(replayed.status, StatusCode::SEE_OTHER);
    assert_eq!(replayed.location(), "/login?next=%2Finstances");
    app.stop().await;
}

async fn signing_in_returns_to_the_page_asked_for(db: Db) {
    let app = TestApp::start(db).await;
    let (email, _) = account(&app).await;
    let mut browser = Browser::new(&app);
    let asked = browser.get("/instances/BRK-XXXX?tab=events").await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER);
    assert_eq!(
        asked.location(),
        "/login?next=%2Finstances%2FBRK-XXXX%3Ftab%3Devents"
    );
    let form = browser.get(asked.location()).await;
    assert!(
        form.body.contains(
            r#"<input type="hidden" name="next" value="/instances/BRK-XXXX?tab=events">"#
        ),
        "{}",
        form.body
    );
    let sign_in = |next: &str| {
        vec![
            ("csrf", form.csrf()),
            ("email", email.clone()),
            ("password", PASSWORD.to_string()),
            ("tier", "legacy".to_string()),
            ("next", next.to_string()),
        ]
    };
    let fields = sign_in("/instances/BRK-XXXX?tab=events");
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let signed = browser.post("/login", &fields).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/instances/BRK-XXXX?tab=events");

    // Never another site: absolute URLs, `//host`, backslashes and hidden characters go to the overview.
    for next in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "evil.example",
    ] {
        let mut other = Browser::new(&app);
        let form = other
            .get(&format!(
                "/login?{}",
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish()
            ))
            .await;
        assert!(
            !form.body.contains(r#"name="next""#),
            "{next}: {}",
            form.body
        );
        let fields = [
            ("csrf", form.csrf()),
            ("email", email.clone()),
            ("password", PASSWORD.to_string()),
            ("tier", "legacy".to_string()),
            ("next", next.to_string()),
        ];
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let signed = other.post("/login", &fields).await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(signed.location(), "/", "{next}");
    }
    app.stop().await;
}

async fn forms_without_the_sessions_token_are_refused(db: Db) {
    let app = TestApp::start(db).await;
    let (email, _) = account(&app).await;
    let (other_email, _) = account(&app).await;
    let mut browser = Browser::new(&app);
    let token = browser.sign_in(&email, PASSWORD, "legacy").await;
    let mut other = Browser::new(&app);
    let other_token = other.sign_in(&other_email, PASSWORD, "legacy").await;
    assert_ne!(token, other_token);

    for form in [
        vec![("name", "k")],
        vec![("csrf", ""), ("name", "k")],
        vec![("csrf", other_token.as_str()), ("name", "k")],
        vec![("csrf", &token[..31]), ("name", "k")],
    ] {
        let refused = browser.post("/ssh-keys", &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(refused.body.contains("Form expired"));
    }
    let keys = browser.get("/ssh-keys").await;
    assert!(keys.body.contains("No keys yet."), "nothing was created");

    // Signing out with a stale token does not sign out.
    let refused = browser.post("/logout", &[("csrf", &other_token)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/").await.status, StatusCode::OK);

    // The sign-in form's token must match the browser's form cookie.
    let mut fresh = Browser::new(&app);
    let form = fresh.get("/login").await;
    fresh.cookies.clear();
    let refused = fresh
        .post(
            "/login",
            &[
                ("csrf", &form.csrf()),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // A token the client made up, in the cookie and the field alike (a cookie another origin of the site
    // could set), is not one the server minted.
    let mut planted = Browser::new(&app);
    let made_up = "A".repeat(54);
    planted
        .cookies
        .insert("barrack_form".into(), made_up.clone());
    let refused = planted
        .post(
            "/login",
            &[
                ("csrf", &made_up),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(!planted.cookies.contains_key("barrack_session"));
    // The sign-in page replaces such a cookie with a token of its own, which then works.
    let form = planted.get("/login").await;
    assert_ne!(planted.cookies["barrack_form"], made_up);
    assert_eq!(form.csrf(), planted.cookies["barrack_form"]);

    // A submission the browser says came from another site, or another origin of this one, is refused
    // with the right tokens; from this origin it goes through.
    for site in ["cross-site", "same-site"] {
        let refused = planted
            .post_with(
                "/login",
                &[
                    ("csrf", &form.csrf()),
                    ("email", &email),
                    ("password", PASSWORD),
                ],
                &[("sec-fetch-site", site)],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{site}");
        assert!(!planted.cookies.contains_key("barrack_session"), "{site}");
        let refused = browser
            .post_with(
                "/ssh-keys",
                &[("csrf", &token), ("name", "k"), ("mode", "generate")],
                &[("sec-fetch-site", site)],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{site}");
    }
    // Sent twice, the header is refused when either value says elsewhere, in either order.
    for sites in [
        [
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "cross-site"),
        ],
        [("sec-fetch-site", "none"), ("sec-fetch-site", "same-site")],
    ] {
        let refused = browser
            .post_with(
                "/ssh-keys",
                &[("csrf", &token), ("name", "k"), ("mode", "generate")],
                &sites,
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{sites:?}");
    }
    assert!(browser.get("/ssh-keys").await.body.contains("No keys yet."));
    let signed_in = planted
        .post_with(
            "/login",
            &[
                ("csrf", &form.csrf()),
                ("email", &email),
                ("password", PASSWORD),
            ],
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert!(planted.cookies.contains_key("barrack_session"));

    // With the right token the same form works.
    let created = browser
        .post(
            "/ssh-keys",
            &[("csrf", &token), ("name", "k"), ("mode", "generate")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(created.body.contains("BEGIN OPENSSH PRIVATE KEY"));
    assert!(
        !browser
            .get("/ssh-keys")
            .await
            .body
            .contains("BEGIN OPENSSH PRIVATE KEY")
    );
    app.stop().await;
}

async fn sign_up_then_sign_in(db: Db) {
    let app = TestApp::start(db).await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/signup").await;
    let token = form.csrf();
    let short = browser
        .post(
            "/signup",
            &[
                ("csrf", &token),
                ("name", "New User"),
                ("email", "new@example.com"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(short.body.contains(r#"id="password-error""#));
    let created = browser
        .post(
            "/signup",
            &[
                ("csrf", &token),
                ("name", "New User"),
                ("email", "new@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    // Redirected to sign in, so that a refresh does not post the sign-up again.
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert_eq!(
        created.location(),
        "/login?signed_up=1&email=new%40example.com"
    );
    let signed_up = browser.get(created.location()).await;
    assert!(signed_up.body.contains("Your account is ready"));
    assert!(signed_up.body.contains(r#"value="new@example.com""#));
    browser
        .sign_in("new@example.com", PASSWORD, "advanced")
        .await;
    let overview = browser.get("/").await;
    assert!(overview.body.contains("advanced tier"));
    assert!(overview.body.contains("Complete your profile"));
    // The missing fields by the profile form's labels, here and where deploying is refused for them.
    assert!(
        overview
            .body
            .contains("Your billing profile is missing Billing address, Postal code, Country:"),
        "{}",
        overview.body
    );
    let key = browser
        .post(
            "/ssh-keys",
            &[
                ("csrf", &overview.csrf()),
                ("name", "k"),
                ("mode", "generate"),
            ],
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED);
    let refused = browser
        .post(
            "/deploy",
            &[
                ("csrf", &overview.csrf()),
                ("instance_name", "early"),
                ("region", "FINLAND-1"),
                ("gpu_model", "H100-SXM5-80GB"),
                ("gpu_count", "1"),
                ("image_name", IMAGE),
                ("ssh_key", "k"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused.body.contains(
            "Complete your billing profile first: missing Billing address, Postal code, Country"
        ),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("address_line"), "{}", refused.body);
    app.stop().await;
}

/// The dashboard's sign-in counts failed passwords with the API's log-ins: after five for one email,
/// both hold that email back, even with the right password.
async fn failed_sign_ins_are_held_back_with_the_apis(db: Db) {
    let app = TestApp::start(db).await;
    let (email, _) = account(&app).await;
    let mut browser = Browser::new(&app);
    let token = browser.get("/login").await.csrf();
    for _ in 0..5 {
        let wrong = browser
            .post(
                "/login",
                &[
                    ("csrf", &token),
                    ("email", &email),
                    ("password", "not the password"),
                    ("tier", "legacy"),
                ],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    }
    let held = browser
        .post(
            "/login",
            &[
                ("csrf", &token),
                ("email", &email),
                ("password", PASSWORD),
                ("tier", "legacy"),
            ],
        )
        .await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS, "{}", held.body);
    assert!(
        held.body.contains("Too many failed sign-ins"),
        "{}",
        held.body
    );
    assert!(
        !held.headers.contains_key("set-cookie")
            || !held.headers["set-cookie"]
                .to_str()
                .unwrap()
                .contains("barrack_session")
    );
    let api = app
        .admin
        .raw(
            reqwest::Method::POST,
            "/api/auth/token/",
            Some(&serde_json::json!({"email": email, "password": PASSWORD})),
        )
        .await
        .unwrap();
    assert_eq!(api.status, 429, "{}", api.text);
    app.stop().await;
}

/// Thirty sign-ins for one email posted at once, the right password among them: no more than five
/// passwords are checked (401), the others get the 429 page; the right one gets in only when it was one
/// of the five checked.
async fn sign_ins_sent_at_once_get_no_more_password_checks_than_the_limit(db: Db) {
    let app = TestApp::start(db).await;
    let (email, _) = account(&app).await;
    let right = 11;
    let mut browsers = Vec::new();
    for _ in 0..30 {
        let mut browser = Browser::new(&app);
        let token = browser.get("/login").await.csrf();
        browsers.push((browser, token));
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(browsers.len()));
    let posts: Vec<_> = browsers
        .into_iter()
        .enumerate()
        .map(|(n, (mut browser, token))| {
            let email = email.clone();
            let start = start.clone();
            tokio::spawn(async move {
                let password = if n == right {
                    PASSWORD.to_string()
                } else {
                    format!("not the password {n}")
                };
                start.wait().await;
                browser
                    .post(
                        "/login",
                        &[
                            ("csrf", &token),
                            ("email", &email),
                            ("password", &password),
                            ("tier", "legacy"),
                        ],
                    )
                    .await
            })
        })
        .collect();
    let mut pages = Vec::new();
    for post in posts {
        pages.push(post.await.unwrap());
    }
    let mut wrong_checked = 0;
    for (n, page) in pages.iter().enumerate() {
        match page.status {
            StatusCode::UNAUTHORIZED if n != right => wrong_checked += 1,
            StatusCode::SEE_OTHER if n == right => {}
            status => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
                assert!(
                    page.body.contains("Too many failed sign-ins"),
                    "{}",
                    page.body
                );
            }
        }
    }
    if pages[right].status == StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(wrong_checked, 5, "exactly the free failures were checked");
    } else {
        assert!(
            wrong_checked < 10,
            "{wrong_checked} wrong passwords checked around one success"
        );
    }
    app.stop().await;
}
