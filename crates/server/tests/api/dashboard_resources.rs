//! The dashboard's resource and operator pages over HTTP, as a browser without scripts would use them: the
//! instance page's charts, rules, volumes and firewalls; volume resize, clone, attach and detach; firewall
//! rules and attachments; custom images; the operator pages. Every form refuses a missing token, another
//! account's resource is a 404 page, and the operator pages are a 404 page for everyone else.

use std::collections::HashMap;

use barrack_api::Tier;
use barrack_api::account::AdminCreateUser;
use barrack_api::firewalls::CreateFirewallRequest;
use barrack_api::instances::DeployRequest;
use barrack_api::snapshots::CreateSnapshotRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_api::volumes::CreateVolumeRequest;
use barrack_core::clock::Clock;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    the_instance_page_manages_rules_volumes_and_firewalls,
    volumes_firewalls_and_images_from_their_pages,
    resource_forms_refuse_a_missing_token,
    another_accounts_resources_are_404_pages,
    operator_pages_are_for_operators_only,
);

const PASSWORD: &str = "correct horse battery";
const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

/// A cookie-keeping client that does not follow redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
    token: String,
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

async fn the_instance_page_manages_rules_volumes_and_firewalls(db: Db) {
    let app = TestApp::start(db).await;
    let (mut b, id) = with_instance(&app).await;
    let path = format!("/instances/{id}");

    // Charts drawn on the server, uptime and cost so far.
    app.clock.advance_ms(5 * 60_000);
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    for part in [
        "Utilisation",
        "<svg class=\"chart\"",
        "CPU use, percent",
        "GPU use, percent",
        "Network traffic",
        "Memory use, percent",
        "Uptime",
        "Cost so far",
        "5 min",
    ] {
        assert!(page.body.contains(part), "{part}: {}", page.body);
    }
    assert!(!page.body.contains(" style="), "no inline styles");
    let usage = b.get(&format!("{path}/usage")).await;
    assert_eq!(usage.status, StatusCode::OK);
    assert!(usage.body.contains("<polyline") || usage.body.contains("<circle"));

    // Security rules: the API's message at the field, then added and removed.
    let bad = b
        .post(
            &format!("{path}/rules"),
            &[
                ("direction", "ingress"),
                ("protocol", "tcp"),
                ("port_range_min", "eighty"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("id=\"rule-min-error\""), "{}", bad.body);
    let bad = b
        .post(
            &format!("{path}/rules"),
            &[
                ("direction", "ingress"),
                ("protocol", "tcp"),
                ("port_range_min", "8080"),
                ("port_range_max", "8081"),
                ("remote_ip_prefix", "not-a-cidr"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("id=\"rule-remote-error\""),
        "{}",
        bad.body
    );
    assert!(
        bad.body.contains("value=\"not-a-cidr\""),
        "kept what was typed"
    );
    let added = b
        .post(
            &format!("{path}/rules"),
            &[
                ("direction", "ingress"),
                ("protocol", "tcp"),
                ("port_range_min", "8080"),
                ("port_range_max", "8081"),
                ("remote_ip_prefix", "203.0.113.0/24"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let page = b.get(&path).await;
    assert!(page.body.contains("8080–8081") && page.body.contains("203.0.113.0/24"));
    let marker = format!("{path}/rules/");
    let start = page.body.find(&marker).unwrap() + marker.len();
    let rule = &page.body[start..start + page.body[start..].find('/').unwrap()];
    let removed = b.post(&format!("{path}/rules/{rule}/delete"), &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(!b.get(&path).await.body.contains("203.0.113.0/24"));

    // Volumes: attach one of the region, then detach it.
    let volume = volume_from_page(&app, &mut b, "res-data").await;
    let refused = b
        .post(&format!("{path}/volumes/attach"), &[("volume_id", "")])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("Choose a volume"));
    let attached = b
        .post(&format!("{path}/volumes/attach"), &[("volume_id", &volume)])
        .await;
    assert_eq!(attached.status, StatusCode::SEE_OTHER, "{}", attached.body);
    app.settle().await;
    let page = b.get(&path).await;
    assert!(
        page.body
            .contains(&format!("{path}/volumes/{volume}/detach"))
    );
    let detached = b
        .post(&format!("{path}/volumes/{volume}/detach"), &[])
        .await;
    assert_eq!(detached.status, StatusCode::SEE_OTHER, "{}", detached.body);
    app.settle().await;
    assert!(
        !b.get(&path)
            .await
            .body
            .contains(&format!("{path}/volumes/{volume}/detach"))
    );

    // Firewalls: attach one of the region, its rules shown with the instance's, then detach it.
    let firewall = firewall_from_page(&app, &mut b, "res-wall").await;
    let rule = b
        .post(
            &format!("/firewalls/{firewall}/rules"),
            &[
                ("direction", "ingress"),
                ("protocol", "udp"),
                ("port_range_min", "5353"),
                ("port_range_max", "5353"),
            ],
        )
        .await;
    assert_eq!(rule.status, StatusCode::SEE_OTHER, "{}", rule.body);
    let attached = b
        .post(
            &format!("{path}/firewalls/attach"),
            &[("firewall_id", &firewall)],
        )
        .await;
    assert_eq!(attached.status, StatusCode::SEE_OTHER, "{}", attached.body);
    app.settle().await;
    let page = b.get(&path).await;
    assert!(page.body.contains("res-wall") && page.body.contains("5353"));
    let detached = b
        .post(&format!("{path}/firewalls/{firewall}/detach"), &[])
        .await;
    assert_eq!(detached.status, StatusCode::SEE_OTHER, "{}", detached.body);
    app.settle().await;
    assert!(!b.get(&path).await.body.contains("5353"));
    app.stop().await;
}

async fn volumes_firewalls_and_images_from_their_pages(db: Db) {
    let app = TestApp::start(db).await;
    let (mut b, instance) = with_instance(&app).await;

    // A volume: grow (only), clone, attach to and detach from the instance.
    let volume = volume_from_page(&app, &mut b, "res-vol").await;
    let path = format!("/volumes/{volume}");
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("res-vol") && page.body.contains("Not attached."));
    // The list filters by region and status; a status the API does not know is its message.
    let listed = b.get("/volumes?region=FINLAND-1&status=available").await;
    assert!(listed.body.contains(">res-vol</a>"));
    let listed = b.get("/volumes?status=in-use").await;
    assert!(!listed.body.contains(">res-vol</a>"));
    let refused = b.get("/volumes?status=melting").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("Unknown status"), "{}", refused.body);
    let shrink = b.post(&format!("{path}/resize"), &[("size", "10")]).await;
    assert_eq!(shrink.status, StatusCode::BAD_REQUEST);
    assert!(shrink.body.contains("id=\"size-error\""), "{}", shrink.body);
    assert!(shrink.body.contains("Volumes only grow"));
    let grown = b.post(&format!("{path}/resize"), &[("size", "40")]).await;
    assert_eq!(grown.status, StatusCode::SEE_OTHER, "{}", grown.body);
    app.settle().await;
    assert!(b.get(&path).await.body.contains("40 GB"));
    let bad_clone = b.post(&format!("{path}/clone"), &[("name", "")]).await;
    assert_eq!(bad_clone.status, StatusCode::BAD_REQUEST);
    assert!(bad_clone.body.contains("id=\"clone-name-error\""));
    let cloned = b
        .post(&format!("{path}/clone"), &[("name", "res-vol-copy")])
        .await;
    assert_eq!(cloned.status, StatusCode::SEE_OTHER, "{}", cloned.body);
    assert_ne!(cloned.location(), path);
    app.settle().await;
    let copy = b.get(cloned.location()).await;
    assert!(copy.body.contains("res-vol-copy") && copy.body.contains(&volume));
    let unknown = b
        .post(&format!("{path}/attach"), &[("instance_id", "no-such")])
        .await;
    assert!(unknown.body.contains("id=\"instance_id-error\""));
    let attached = b
        .post(&format!("{path}/attach"), &[("instance_id", &instance)])
        .await;
    assert_eq!(attached.status, StatusCode::SEE_OTHER, "{}", attached.body);
    app.settle().await;
    assert!(b.get(&path).await.body.contains("Attached to"));
    let detached = b.post(&format!("{path}/detach"), &[]).await;
    assert_eq!(detached.status, StatusCode::SEE_OTHER, "{}", detached.body);
    app.settle().await;
    assert!(b.get(&path).await.body.contains("Not attached."));

    // A firewall: rules added and removed, attached to and detached from the instance.
    let firewall = firewall_from_page(&app, &mut b, "res-fw").await;
    let path = format!("/firewalls/{firewall}");
    let listed = b.get("/firewalls?region=FINLAND-1&page=1").await;
    assert!(listed.body.contains(">res-fw</a>") && listed.body.contains("Page 1 of 1"));
    let bad = b
        .post(&format!("{path}/rules"), &[("direction", "sideways")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("id=\"rule-direction-error\""),
        "{}",
        bad.body
    );
    let added = b
        .post(
            &format!("{path}/rules"),
            &[
                ("direction", "ingress"),
                ("protocol", "tcp"),
                ("port_range_min", "443"),
                ("port_range_max", "443"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let unknown = b
        .post(&format!("{path}/attach"), &[("instance_id", "no-such")])
        .await;
    assert!(
        unknown.body.contains("id=\"instance_id-error\""),
        "{}",
        unknown.body
    );
    let attached = b
        .post(&format!("{path}/attach"), &[("instance_id", &instance)])
        .await;
    assert_eq!(attached.status, StatusCode::SEE_OTHER, "{}", attached.body);
    app.settle().await;
    let page = b.get(&path).await;
    assert!(page.body.contains("res-one") && page.body.contains(">SUCCESS<"));
    let detached = b
        .post(&format!("{path}/instances/{instance}/detach"), &[])
        .await;
    assert_eq!(detached.status, StatusCode::SEE_OTHER, "{}", detached.body);
    let marker = format!("{path}/rules/");
    let page = b.get(&path).await;
    let start = page.body.find(&marker).unwrap() + marker.len();
    let rule = page.body[start..start + page.body[start..].find('/').unwrap()].to_string();
    let removed = b.post(&format!("{path}/rules/{rule}/delete"), &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    app.settle().await;
    assert!(
        b.get(&path)
            .await
            .body
            .contains("Not attached to any instance.")
    );

    // A custom image from a snapshot of the instance, listed, offered on the deploy page, deleted.
    let snap = b
        .post(
            &format!("/instances/{instance}/snapshot"),
            &[("name", "res-snap")],
        )
        .await;
    assert_eq!(snap.status, StatusCode::SEE_OTHER, "{}", snap.body);
    app.settle().await;
    let images = b.get("/images").await;
    assert_eq!(images.status, StatusCode::OK);
    assert!(images.body.contains("res-snap"));
    let marker = "<option value=\"";
    let start = images.body.find("id=\"snapshot_id\"").unwrap();
    let at = images.body[start..].find(marker).unwrap() + start + marker.len();
    let at = images.body[at..].find(marker).unwrap() + at + marker.len();
    let snapshot = images.body[at..at + images.body[at..].find('"').unwrap()].to_string();
    let bad = b
        .post("/images", &[("snapshot_id", &snapshot), ("name", "")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("id=\"name-error\""), "{}", bad.body);
    let made = b
        .post(
            "/images",
            &[("snapshot_id", &snapshot), ("name", "res-image")],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    app.settle().await;
    let images = b.get("/images?status=SUCCESS").await;
    assert!(images.body.contains("res-image"), "{}", images.body);
    assert!(b.get("/deploy").await.body.contains("Custom images"));
    let marker = "/images/";
    let start = images.body.find("action=\"/images/").unwrap() + "action=\"".len() + marker.len();
    let image = images.body[start..start + images.body[start..].find('/').unwrap()].to_string();
    let deleted = b.post(&format!("/images/{image}/delete"), &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    app.stop().await;
}

async fn resource_forms_refuse_a_missing_token(db: Db) {
    let app = TestApp::start(db).await;
    let (mut b, id) = with_instance(&app).await;
    let volume = volume_from_page(&app, &mut b, "res-token").await;
    let firewall = firewall_from_page(&app, &mut b, "res-token").await;
    let (operator, _) = account(&app, true).await;
    let mut op = Browser::signed_in(&app, &operator).await;
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/instances/{id}/rules"),
            vec![("direction", "ingress")],
        ),
        (format!("/instances/{id}/rules/r/delete"), vec![]),
        (
            format!("/instances/{id}/volumes/attach"),
            vec![("volume_id", &volume)],
        ),
        (format!("/instances/{id}/volumes/{volume}/detach"), vec![]),
        (
            format!("/instances/{id}/firewalls/attach"),
            vec![("firewall_id", &firewall)],
        ),
        (
            format!("/instances/{id}/firewalls/{firewall}/detach"),
            vec![],
        ),
        (format!("/volumes/{volume}/resize"), vec![("size", "50")]),
        (format!("/volumes/{volume}/clone"), vec![("name", "copy")]),
        (
            format!("/volumes/{volume}/attach"),
            vec![("instance_id", &id)],
        ),
        (format!("/volumes/{volume}/detach"), vec![]),
        (
            format!("/firewalls/{firewall}/rules"),
            vec![("direction", "ingress")],
        ),
        (format!("/firewalls/{firewall}/rules/r/delete"), vec![]),
        (
            format!("/firewalls/{firewall}/attach"),
            vec![("instance_id", &id)],
        ),
        (
            format!("/firewalls/{firewall}/instances/{id}/detach"),
            vec![],
        ),
        ("/images".into(), vec![("name", "x")]),
        ("/images/img/delete".into(), vec![]),
    ];
    let stale = "x".repeat(43);
    for (path, fields) in &forms {
        for token in ["", stale.as_str()] {
            let mut with = vec![("csrf", token)];
            with.extend_from_slice(fields);
            let refused = b.post_raw(path, &with).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
            assert!(refused.is_html());
        }
    }
    for path in [
        "/operator/grants",
        "/operator/capacity",
        "/operator/clock",
        "/operator/faults",
    ] {
        let refused = op.post_raw(path, &[("minutes", "5")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Nothing changed.
    let page = b.get(&format!("/volumes/{volume}")).await;
    assert!(page.body.contains("20 GB") && page.body.contains("Not attached."));
    assert!(!b.get("/volumes").await.body.contains(">copy</a>"));
    app.stop().await;
}

async fn another_accounts_resources_are_404_pages(db: Db) {
    let app = TestApp::start(db).await;
    let (owner, _) = app.funded_user(Tier::Advanced, "US", "200").await;
    owner
        .create_ssh_key(&CreateSshKeyRequest {
            name: "k".into(),
            public_key: None,
        })
        .await
        .unwrap();
    let request: DeployRequest = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": "theirs", "image_name": IMAGE, "ssh_key": "k"
    }))
    .unwrap();
    let instance = owner.deploy(&request).await.unwrap().data.instance_id;
    let volume = owner
        .create_volume(&CreateVolumeRequest {
            name: "their-volume".into(),
            size: 20,
            region: "FINLAND-1".into(),
            volume_type: "NVMe".into(),
            bootable: false,
            image_name: None,
            labels: Default::default(),
        })
        .await
        .unwrap()
        .data
        .id;
    let firewall = owner
        .create_firewall(&CreateFirewallRequest {
            name: "their-firewall".into(),
            description: None,
            region: "FINLAND-1".into(),
            rules: Vec::new(),
            labels: Default::default(),
        })
        .await
        .unwrap()
        .data
        .id;
    app.settle().await;
    let snapshot = owner
        .create_snapshot(&CreateSnapshotRequest {
            instance_id: instance.clone(),
            name: "their-snapshot".into(),
            description: None,
            is_image: true,
            labels: Default::default(),
        })
        .await
        .unwrap()
        .data;
    app.settle().await;
    let image = owner
        .images(&Default::default())
        .await
        .unwrap()
        .data
        .images
        .into_iter()
        .next()
        .expect("an image made with the snapshot")
        .id;

    let (mut b, mine) = with_instance(&app).await;
    for path in [
        format!("/instances/{instance}/usage"),
        format!("/volumes/{volume}"),
        format!("/firewalls/{firewall}"),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.is_html());
        assert!(!page.body.contains("their-"));
    }
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/instances/{instance}/rules"),
            vec![("direction", "ingress")],
        ),
        (
            format!("/instances/{instance}/volumes/attach"),
            vec![("volume_id", &volume)],
        ),
        (
            format!("/instances/{instance}/firewalls/attach"),
            vec![("firewall_id", &firewall)],
        ),
        (
            format!("/instances/{instance}/firewalls/{firewall}/detach"),
            vec![],
        ),
        // The caller's own instance with another account's firewall.
        (
            format!("/instances/{mine}/firewalls/attach"),
            vec![("firewall_id", &firewall)],
        ),
        (format!("/volumes/{volume}/resize"), vec![("size", "50")]),
        (format!("/volumes/{volume}/clone"), vec![("name", "mine")]),
        (
            format!("/volumes/{volume}/attach"),
            vec![("instance_id", &mine)],
        ),
        (format!("/volumes/{volume}/detach"), vec![]),
        (
            format!("/firewalls/{firewall}/rules"),
            vec![("direction", "ingress")],
        ),
        (
            format!("/firewalls/{firewall}/attach"),
            vec![("instance_id", &mine)],
        ),
        (format!("/images/{image}/delete"), vec![]),
    ];
    for (path, fields) in &posts {
        let page = b.post(path, fields).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
        assert!(page.is_html());
    }
    // Another account's snapshot is not a source of images.
    let refused = b
        .post(
            "/images",
            &[("snapshot_id", &snapshot.id), ("name", "stolen")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(refused.body.contains("id=\"snapshot_id-error\""));
    // Nothing of theirs changed.
    let theirs = owner.volume(&volume).await.unwrap().data;
    assert_eq!((theirs.size_gb, theirs.attachment), (20, None));
    assert_eq!(owner.firewall(&firewall).await.unwrap().data.rule_count, 0);
    assert_eq!(
        owner
            .images(&Default::default())
            .await
            .unwrap()
            .data
            .images
            .len(),
        1
    );
    app.stop().await;
}

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
