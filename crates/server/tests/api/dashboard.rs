//! The web dashboard over HTTP, as a browser without scripts would use it: sign-in and sign-out with
//! cookies, forms refused without the session's token, another account's instance a 404 page, the API's
//! messages at the fields, and actions that change state through the same services as the API.
//!
//! A file per topic: [`sign_in`] (sessions, sign-up, the sign-in throttle) and [`pages`] (what the pages
//! show and do); this module holds the cookie-keeping [`Browser`] they share.

mod pages;
mod sign_in;

use std::collections::HashMap;

use barrack_api::account::AdminCreateUser;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::common::TestApp;

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
