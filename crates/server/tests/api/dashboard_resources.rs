//! The dashboard's resource and operator pages over HTTP, as a browser without scripts would use them: the
//! instance page's charts, rules, volumes and firewalls; volume resize, clone, attach and detach; firewall
//! rules and attachments; custom images; the operator pages. Every form refuses a missing token, another
//! account's resource is a 404 page, and the operator pages are a 404 page for everyone else.
//!
//! A file per topic: [`instance_page`], [`operator_pages`], [`refusals`], [`resource_pages`].

mod instance_page;
mod operator_pages;
mod refusals;
mod resource_pages;

use std::collections::HashMap;

use barrack_api::account::AdminCreateUser;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::common::TestApp;

const PASSWORD: &str = "correct horse battery";

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

/// A cookie-keeping client that does not follow redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
    token: String,
}

impl Browser {
    async fn signed_in(app: &TestApp, email: &str) -> Browser {
        let mut b = Browser {
            http: crate::common::http_client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base_url.clone(),
            cookies: HashMap::new(),
            token: String::new(),
        };
        let form = b.get("/login").await;
        let token = csrf(&form.body);
        let signed = b
            .post_raw(
                "/login",
                &[
                    ("csrf", &token),
                    ("email", email),
                    ("password", PASSWORD),
                    ("tier", "advanced"),
                ],
            )
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
        b.token = csrf(&b.get("/").await.body);
        b
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (name, value) = text.split(';').next().unwrap().split_once('=').unwrap();
            self.cookies.insert(name.to_string(), value.to_string());
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    async fn post_raw(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            body.append_pair(k, v);
        }
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.finish())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// A form with the session's token.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let token = self.token.clone();
        let mut fields = vec![("csrf", token.as_str())];
        fields.extend_from_slice(form);
        self.post_raw(path, &fields).await
    }
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn is_html(&self) -> bool {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"))
    }
}

/// The first hidden CSRF token of a page.
fn csrf(body: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = body.find(marker).expect("a form with a token") + marker.len();
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].to_string()
}

/// A new account that signs in with [`PASSWORD`]: its email and id.
async fn account(app: &TestApp, admin: bool) -> (String, String) {
    let n = barrack_core::ids::random_alphanumeric(8).to_lowercase();
    let email = format!("res-{n}@example.com");
    let user = app
        .admin
        .admin_create_user(&AdminCreateUser {
            email: email.clone(),
            password: PASSWORD.into(),
            name: "Resource User".into(),
            admin,
        })
        .await
        .unwrap()
        .data;
    (email, user.id)
}

/// A signed-in browser of an account with a complete profile, credits, the SSH key "k" and an ACTIVE
/// instance deployed from the deploy page: the browser and the instance's id.
async fn with_instance(app: &TestApp) -> (Browser, String) {
    let (email, id) = account(app, false).await;
    let mut b = Browser::signed_in(app, &email).await;
    let saved = b
        .post(
            "/account/profile",
            &[
                ("name", "Resource User"),
                ("address_line", "1 Test Street"),
                ("postal_code", "00100"),
                ("country", "US"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    app.grant(&id, "500", barrack_api::Currency::USD).await;
    let key = b
        .post("/ssh-keys", &[("name", "k"), ("mode", "generate")])
        .await;
    assert_eq!(key.status, StatusCode::CREATED);
    let deployed = b
        .post(
            "/deploy",
            &[
                ("instance_name", "res-one"),
                ("region", "FINLAND-1"),
                ("gpu_model", "H100-SXM5-80GB"),
                ("gpu_count", "1"),
                ("image_name", IMAGE),
                ("ssh_key", "k"),
            ],
        )
        .await;
    assert_eq!(deployed.status, StatusCode::SEE_OTHER, "{}", deployed.body);
    let instance = deployed
        .location()
        .trim_start_matches("/instances/")
        .to_string();
    app.settle().await;
    (b, instance)
}

/// Creates a volume from the volumes page; its id.
async fn volume_from_page(app: &TestApp, b: &mut Browser, name: &str) -> String {
    let created = b
        .post(
            "/volumes",
            &[
                ("name", name),
                ("size", "20"),
                ("region", "FINLAND-1"),
                ("volume_type", "NVMe"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    app.settle().await;
    let list = b.get("/volumes").await;
    let at = list.body.find(&format!(">{name}</a>")).expect("listed");
    let start = list.body[..at].rfind("/volumes/").unwrap() + "/volumes/".len();
    let end = list.body[start..].find('"').unwrap() + start;
    list.body[start..end].to_string()
}

/// Creates a firewall from the firewalls page; its id.
async fn firewall_from_page(app: &TestApp, b: &mut Browser, name: &str) -> String {
    let created = b
        .post("/firewalls", &[("name", name), ("region", "FINLAND-1")])
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    app.settle().await;
    let list = b.get("/firewalls").await;
    let at = list.body.find(&format!(">{name}</a>")).expect("listed");
    let start = list.body[..at].rfind("/firewalls/").unwrap() + "/firewalls/".len();
    let end = list.body[start..].find('"').unwrap() + start;
    list.body[start..end].to_string()
}
