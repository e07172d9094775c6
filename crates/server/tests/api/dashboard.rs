//! The web dashboard over HTTP, as a browser without scripts would use it: sign-in and sign-out with
//! cookies, forms refused without the session's token, another account's instance a 404 page, the API's
//! messages at the fields, and actions that change state through the same services as the API.

use std::collections::HashMap;

use barrack_api::Tier;
use barrack_api::account::AdminCreateUser;
use barrack_api::instances::DeployRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    signing_in_opens_a_session_and_signing_out_ends_it,
    signing_in_returns_to_the_page_asked_for,
    forms_without_the_sessions_token_are_refused,
    another_accounts_instance_is_a_404_page,
    deploy_act_snapshot_and_restore_from_the_pages,
    bad_input_is_shown_at_the_fields,
    short_credits_are_a_message_with_a_link,
    sign_up_then_sign_in,
    failed_sign_ins_are_held_back_with_the_apis,
    sign_ins_sent_at_once_get_no_more_password_checks_than_the_limit,
);

pub(crate) const PASSWORD: &str = "correct horse battery";
pub(crate) const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

/// A cookie-keeping client that does not follow redirects, so each answer can be checked.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The first hidden CSRF token of the page's forms.
    pub(crate) fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("a form with a token") + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_string()
    }

    pub(crate) fn content_type(&self) -> &str {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Browser {
        Browser {
            http: crate::common::http_client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base_url.clone(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_with(path, form, &[]).await
    }

    /// A form posted with more headers (what a browser says of where the form came from).
    pub(crate) async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let body = form
            .iter()
            .fold(
                form_urlencoded::Serializer::new(String::new()),
                |mut s, (k, v)| {
                    s.append_pair(k, v);
                    s
                },
            )
            .finish();
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.body(body).send().await.unwrap();
        self.keep(response).await
    }

    /// Signs in through the form; returns the overview's form token.
    pub(crate) async fn sign_in(&mut self, email: &str, password: &str, tier: &str) -> String {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let token = form.csrf();
        let signed = self
            .post(
                "/login",
                &[
                    ("csrf", &token),
                    ("email", email),
                    ("password", password),
                    ("tier", tier),
                ],
            )
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
        assert_eq!(signed.location(), "/");
        let overview = self.get("/").await;
        assert_eq!(overview.status, StatusCode::OK);
        overview.csrf()
    }
}

/// A new account with a known email and password: its email and id.
pub(crate) async fn account(app: &TestApp) -> (String, String) {
    let n = barrack_core::ids::random_alphanumeric(8).to_lowercase();
    let email = format!("web-{n}@example.com");
    let user = app
        .admin
        .admin_create_user(&AdminCreateUser {
            email: email.clone(),
            password: PASSWORD.into(),
            name: "Web User".into(),
            admin: false,
        })
        .await
        .unwrap()
        .data;
    (email, user.id)
}

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
    owner
        .create_ssh_key(&CreateSshKeyRequest {
            name: "k".into(),
            public_key: None,
        })
        .await
        .unwrap();
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

/// A signed-in browser of an account with a complete profile, credits and the SSH key "k".
pub(crate) async fn funded_browser(app: &TestApp, credits: &str) -> (Browser, String, String) {
    let (email, id) = account(app).await;
    let mut browser = Browser::new(app);
    let token = browser.sign_in(&email, PASSWORD, "advanced").await;
    let saved = browser
        .post(
            "/account/profile",
            &[
                ("csrf", &token),
                ("name", "Web User"),
                ("address_line", "1 Test Street"),
                ("postal_code", "00100"),
                ("country", "US"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert!(
        browser
            .get("/account?saved=profile")
            .await
            .body
            .contains("Profile saved.")
    );
    if credits != "0" {
        app.grant(&id, credits, barrack_api::Currency::USD).await;
    }
    let key = browser
        .post(
            "/ssh-keys",
            &[("csrf", &token), ("name", "k"), ("mode", "generate")],
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED);
    (browser, token, id)
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
