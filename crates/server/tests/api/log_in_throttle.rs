//! The log-in throttle: failed passwords hold an email, and an address, back for a delay that grows,
//! counted before the password is checked and shared by every server on the database.

use barrack_api::Tier;
use barrack_api::account::{AdminCreateUser, TokenObtainPair};
use barrack_client::{Client, RawResponse};
use barrack_core::accounts::login_throttle::{FREE_FAILURES_PER_ADDRESS, FREE_FAILURES_PER_EMAIL};
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp, ordinary_account};
use crate::on_both_databases;

on_both_databases!(
    failed_log_ins_are_held_back_per_email_and_per_address,
    replicas_count_failed_log_ins_together,
    log_ins_sent_at_once_get_no_more_password_checks_than_the_limit,
    log_ins_sent_at_once_from_one_address_stop_at_its_limit,
    log_ins_do_not_stall_other_requests,
);

/// A log-in for `email` with `password` through `client`: the raw answer.
async fn log_in(client: &Client, email: &str, password: &str) -> RawResponse {
    let body = json!({"email": email, "password": password});
    client
        .raw(Method::POST, "/api/auth/token/", Some(&body))
        .await
        .unwrap()
}

async fn create_user(app: &TestApp, email: &str) {
    app.admin
        .admin_create_user(&AdminCreateUser {
            email: email.into(),
            password: "correct horse battery".into(),
            name: "Log In".into(),
            admin: false,
        })
        .await
        .unwrap();
}

/// Wrong passwords sent to two servers on one database add up: after three on one and two on the
/// other, the email is held back on both (the right password included); a log-in on either clears it
/// for both; twenty failures from one address spread over both hold the address back on both.
async fn replicas_count_failed_log_ins_together(db: Db) {
    let app = TestApp::start(db).await;
    let other = app.replica().await;
    let here = app.anonymous();
    let there = Client::builder(format!("http://{}", other.addr))
        .max_retries(0)
        .build()
        .unwrap();
    let email = "spread@example.com";
    create_user(&app, email).await;
    for n in 0..FREE_FAILURES_PER_EMAIL {
        let server = if n % 2 == 0 { &here } else { &there };
        assert_eq!(log_in(server, email, "wrong password").await.status, 401);
    }
    for server in [&here, &there] {
        let held = log_in(server, email, "correct horse battery").await;
        assert_held_back(&held);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        log_in(&there, email, "correct horse battery").await.status,
        200
    );
    for _ in 0..FREE_FAILURES_PER_EMAIL - 1 {
        assert_eq!(
            log_in(&here, email, "wrong again").await.status,
            401,
            "the log-in on the other server started the email afresh here too"
        );
    }
    // The address has 1 + 2 * (FREE_FAILURES_PER_EMAIL - 1) failures now; spray the rest over both.
    let counted = 2 * FREE_FAILURES_PER_EMAIL - 1;
    for n in counted..FREE_FAILURES_PER_ADDRESS {
        let server = if n % 2 == 0 { &here } else { &there };
        let answer = log_in(server, &format!("spray-{n}@example.com"), "guess").await;
        assert_eq!(answer.status, 401, "{}", answer.text);
    }
    for server in [&here, &there] {
        assert_held_back(&log_in(server, "fresh@example.com", "guess").await);
    }
    other.shutdown().await;
    app.stop().await;
}

/// After five wrong passwords an email is held back (429 with Retry-After, the right password included)
/// for a delay that grows; twenty failures from one address hold back the address for every email; a
/// success clears the email's count.
async fn failed_log_ins_are_held_back_per_email_and_per_address(db: Db) {
    let app = TestApp::start(db).await;
    let anonymous = app.anonymous();
    let email = "held-back@example.com";
    create_user(&app, email).await;
    let login = |email: &str, password: &str| {
        let email = email.to_string();
        let password = password.to_string();
        let anonymous = anonymous.clone();
        async move { log_in(&anonymous, &email, &password).await }
    };
    for _ in 0..5 {
        assert_eq!(login(email, "wrong password").await.status, 401);
    }
    let held = login(email, "correct horse battery").await;
    assert_eq!(held.status, 429, "{}", held.text);
    assert_eq!(held.body["code"], "RATE_LIMITED");
    assert_eq!(held.headers["retry-after"], "1");
    let other = login("someone-else@example.com", "wrong password").await;
    assert_eq!(other.status, 401, "other emails are not held back yet");

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(login(email, "still wrong").await.status, 401);
    let longer = login(email, "correct horse battery").await;
    assert_eq!(longer.status, 429);
    assert_eq!(longer.headers["retry-after"], "2", "the delay doubles");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(login(email, "correct horse battery").await.status, 200);
    assert_eq!(
        login(email, "wrong again").await.status,
        401,
        "a success starts the email afresh"
    );

    // Spraying many emails from one address: the address is held back, whatever the email.
    for n in 0..20 {
        let _ = login(&format!("spray-{n}@example.com"), "guess").await;
    }
    let sprayed = login("fresh@example.com", "guess").await;
    assert_eq!(sprayed.status, 429, "{}", sprayed.text);
    // Once the hold is over, right passwords from that address get in one after another: an attempt
    // taken back takes back the longer hold it set too, so no one behind the address is held back
    // for a log-in that succeeded.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let right = login(email, "correct horse battery").await;
        assert_eq!(right.status, 200, "{}", right.text);
    }
    let wrong = login("spray-0@example.com", "guess").await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    let held = login(email, "correct horse battery").await;
    assert_eq!(held.status, 429, "a wrong one still counts: {}", held.text);
    app.stop().await;
}

/// Sends every `(email, password)` to `POST /api/auth/token/` at once; the answers in the same order.
async fn log_ins_at_once(app: &TestApp, attempts: &[(String, String)]) -> Vec<RawResponse> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(attempts.len()));
    let tasks: Vec<_> = attempts
        .iter()
        .map(|(email, password)| {
            let client = app.anonymous();
            let body = json!({"email": email, "password": password});
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                client
                    .raw(Method::POST, "/api/auth/token/", Some(&body))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// A held-back answer: 429 `RATE_LIMITED` with a `Retry-After`.
fn assert_held_back(answer: &RawResponse) {
    assert_eq!(answer.status, 429, "{}", answer.text);
    assert_eq!(answer.body["code"], "RATE_LIMITED", "{}", answer.text);
    assert!(
        answer.headers.contains_key("retry-after"),
        "{:?}",
        answer.headers
    );
}

/// Forty log-ins for one email sent at once, the right password among them: each counts as a failure
/// from before its password is checked, so no more than five are checked and the others are 429. The
/// right password gets in only when it was one of those five (a success clears the email's count, so
/// attempts arriving after it may be checked again). Password changes with a wrong current password,
/// sent at once, likewise get five checks.
async fn log_ins_sent_at_once_get_no_more_password_checks_than_the_limit(db: Db) {
    let app = TestApp::start(db).await;
    let email = "burst@example.com";
    let user = app
        .admin
        .admin_create_user(&AdminCreateUser {
            email: email.into(),
            password: "correct horse battery".into(),
            name: "Burst".into(),
            admin: false,
        })
        .await
        .unwrap()
        .data;
    let free = FREE_FAILURES_PER_EMAIL as usize;
    let right = 17;
    let attempts: Vec<(String, String)> = (0..40)
        .map(|n| {
            let password = if n == right {
                "correct horse battery".to_string()
            } else {
                format!("wrong password {n}")
            };
            (email.to_string(), password)
        })
        .collect();
    let answers = log_ins_at_once(&app, &attempts).await;
    let mut wrong_checked = 0;
    for (n, answer) in answers.iter().enumerate() {
        match answer.status.as_u16() {
            401 if n != right => wrong_checked += 1,
            200 if n == right => {}
            _ => assert_held_back(answer),
        }
    }
    if answers[right].status == 429 {
        assert_eq!(
            wrong_checked, free,
            "exactly the free failures were checked; the right password waits"
        );
    } else {
        assert!(
            wrong_checked < 2 * free,
            "{wrong_checked} wrong passwords checked around one success"
        );
    }
    let held = answers.iter().filter(|a| a.status == 429).count();
    assert!(held >= 40 - 2 * free, "{held} held back");

    // Wrong current passwords of a password change count the same way, for the account's email.
    let key = app
        .admin
        .admin_create_api_key(&user.id, "k", Tier::Legacy)
        .await
        .unwrap()
        .data;
    let client = app.admin.with_api_key(&key.key.key);
    let (_, _, changer) = ordinary_account(&app, "changing", Tier::Legacy).await;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let changes: Vec<_> = (0..20)
        .map(|n| {
            let changer = changer.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                changer
                    .change_password(&format!("guess number {n}"), "a brand new password")
                    .await
            })
        })
        .collect();
    let (mut checked, mut held) = (0, 0);
    for change in changes {
        let e = change.await.unwrap().unwrap_err();
        match e.status() {
            Some(400) => {
                assert!(
                    e.field_errors().unwrap().contains_key("current_password"),
                    "{e}"
                );
                checked += 1;
            }
            _ => {
                assert_eq!(
                    (e.status(), e.code()),
                    (Some(429), Some("RATE_LIMITED")),
                    "{e}"
                );
                held += 1;
            }
        }
    }
    assert_eq!((checked, held), (free, 20 - free));
    client
        .profile()
        .await
        .expect("the other account's key works");
    app.stop().await;
}

/// Forty log-ins for forty emails from one address, sent at once: twenty are checked, twenty are 429.
async fn log_ins_sent_at_once_from_one_address_stop_at_its_limit(db: Db) {
    let app = TestApp::start(db).await;
    let attempts: Vec<(String, String)> = (0..40)
        .map(|n| (format!("sprayed-{n}@example.com"), "guess".to_string()))
        .collect();
    let answers = log_ins_at_once(&app, &attempts).await;
    let checked = answers.iter().filter(|a| a.status == 401).count();
    for answer in answers.iter().filter(|a| a.status != 401) {
        assert_held_back(answer);
    }
    assert_eq!(checked, FREE_FAILURES_PER_ADDRESS as usize);
    app.stop().await;
}

/// Password hashing runs off the async workers: while 32 log-ins hash at once, `/api/health/` keeps
/// answering (p99 under a generous 100 ms: a guard against hashing on the runtime again, which held it
/// for seconds, not a performance target). The log-ins are spread over eight accounts and come from 32
/// addresses (a trusted proxy names them), so that the log-in throttle, which lets no more than a few
/// checks run at once per email and per address, lets every one through.
async fn log_ins_do_not_stall_other_requests(db: Db) {
    let app = TestApp::start_with(db, |c| {
        c.rate_limit.trusted_proxies = vec!["127.0.0.0/8".to_string()];
    })
    .await;
    for n in 0..8 {
        app.admin
            .admin_create_user(&AdminCreateUser {
                email: format!("busy-{n}@example.com"),
                password: "correct horse battery".into(),
                name: "Busy User".into(),
                admin: false,
            })
            .await
            .unwrap();
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let client = app.anonymous();
        let done = done.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let raw = client.raw(Method::GET, "/api/health/", None).await.unwrap();
                assert_eq!(raw.status, 200);
                latencies.push(started.elapsed());
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            latencies
        })
    };
    let http = crate::common::http_client();
    let logins: Vec<_> = (0..32)
        .map(|n| {
            let http = http.clone();
            let url = format!("{}/api/auth/token/", app.base_url);
            tokio::spawn(async move {
                let log_in = || {
                    http.post(&url)
                        .header("X-Forwarded-For", format!("203.0.113.{}", n + 1))
                        .json(&TokenObtainPair {
                            email: format!("busy-{}@example.com", n % 8),
                            password: "correct horse battery".into(),
                            tier: None,
                        })
                        .send()
                };
                let mut response = log_in().await.unwrap();
                // Held back at most once, and told for how long (a loaded machine's checks overlap).
                if response.status() == 429 {
                    let wait = response.headers()["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                    response = log_in().await.unwrap();
                }
                (response.status().as_u16(), response.text().await.unwrap())
            })
        })
        .collect();
    for login in logins {
        let (status, body) = login.await.unwrap();
        assert_eq!(status, 200, "log-in: {body}");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut latencies = prober.await.unwrap();
    latencies.sort();
    assert!(latencies.len() >= 5, "probed {} times", latencies.len());
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    assert!(
        p99 < std::time::Duration::from_millis(100),
        "health p99 {p99:?} over {} probes (max {:?})",
        latencies.len(),
        latencies.last().unwrap()
    );
    app.stop().await;
}
