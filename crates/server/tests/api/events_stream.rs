//! The event stream (`GET /api/events/stream/`): a client that reconnects with `Last-Event-ID` gets
//! exactly the events it missed, in order, once each; an event whose transaction commits after a later
//! one's is not skipped; another account's events and ids stay out.

use std::collections::BTreeSet;
use std::time::Duration;

use barrack_api::Tier;
use barrack_api::account::{TokenObtainPair, TokenPair};
use barrack_api::instances::Event;
use barrack_api::{Envelope, PageQuery};
use barrack_client::{Client, EventStream};
use barrack_core::platform::events::{NewEvent, record};
use barrack_store::Backend;

use crate::common::{Db, ORDINARY_PASSWORD, START_MS, TestApp, ordinary_account, ssh_firewall};
use crate::on_both_databases;

on_both_databases!(
    a_resumed_stream_gets_exactly_the_missed_events,
    an_event_committed_after_a_later_one_is_not_skipped,
    bad_cursors_are_refused_and_other_accounts_stay_out,
    a_reader_reconnecting_during_concurrent_writes_gets_every_event_once,
    a_token_stream_ends_with_its_session,
    a_token_stream_ends_when_its_token_expires,
);

/// How long a stream may go on after its caller stops being allowed: the server's re-check interval
/// (5 s) and a margin for a loaded machine.
const ENDS_WITHIN: Duration = Duration::from_secs(7);

/// The next event, failing the test when none comes within a few seconds.
async fn next(stream: &mut EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event arrives")
        .expect("the stream reads")
        .expect("the stream is open")
}

/// Whether an event arrives within `wait`.
async fn quiet_for(stream: &mut EventStream, wait: Duration) -> bool {
    match tokio::time::timeout(wait, stream.next()).await {
        Err(_) => true,
        Ok(got) => panic!("expected no event, got {got:?}"),
    }
}

/// Every event of the account, as the list endpoint has them.
async fn all_events(client: &Client) -> Vec<Event> {
    let page = PageQuery {
        page: Some(1),
        limit: Some(100),
    };
    let list: Envelope<_> = client.events(&page).await.unwrap();
    list.data.events
}

async fn a_resumed_stream_gets_exactly_the_missed_events(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _, key) = app.user_with_key(Tier::Advanced).await;
    // A stream without a cursor starts about now: on PostgreSQL it may begin with events committed just
    // before it opened (of transactions newer than the oldest one still running), never later ones.
    let before = client
        .create_firewall(&ssh_firewall("before"))
        .await
        .unwrap()
        .data
        .id;
    let mut stream = client.event_stream(None).await.unwrap();
    let first = client
        .create_firewall(&ssh_firewall("first"))
        .await
        .unwrap()
        .data
        .id;
    let mut seen = next(&mut stream).await;
    while seen.resource_id == before {
        seen = next(&mut stream).await;
    }
    assert_eq!(seen.resource_id, first);
    assert_eq!(seen.kind, "created");
    assert_eq!(stream.last_event_id(), Some(seen.id.as_str()));
    drop(stream);

    // Missed while disconnected: two creations and the settling of all three firewalls.
    client
        .create_firewall(&ssh_firewall("second"))
        .await
        .unwrap();
    client
        .create_firewall(&ssh_firewall("third"))
        .await
        .unwrap();
    app.settle().await;
    let missed: BTreeSet<String> = all_events(&client)
        .await
        .into_iter()
        .filter(|e| e.id != seen.id && !(e.resource_id == before && e.kind == "created"))
        .map(|e| e.id)
        .collect();
    assert_eq!(missed.len(), 2 + 4, "two creations, four settlings");

    let mut resumed = client.event_stream(Some(&seen.id)).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..missed.len() {
        got.push(next(&mut resumed).await);
    }
    let got_ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        got_ids
            .iter()
            .map(|id| id.to_string())
            .collect::<BTreeSet<_>>(),
        missed,
        "exactly the missed events"
    );
    assert_eq!(got_ids.len(), missed.len(), "each once: {got_ids:?}");
    // Each firewall's own events come in the order they happened.
    for name_id in got
        .iter()
        .filter(|e| e.kind == "created")
        .map(|e| &e.resource_id)
    {
        let kinds: Vec<&str> = got
            .iter()
            .filter(|e| &e.resource_id == name_id)
            .map(|e| e.kind.as_str())
            .collect();
        assert_eq!(kinds, ["created", "status_changed"], "{name_id}");
    }
    assert!(quiet_for(&mut resumed, Duration::from_millis(700)).await);

    // Live events keep coming on the resumed stream, and `?after=` resumes as the header does.
    let fourth = client
        .create_firewall(&ssh_firewall("fourth"))
        .await
        .unwrap()
        .data
        .id;
    let live = next(&mut resumed).await;
    assert_eq!(live.resource_id, fourth);
    let raw = crate::common::http_client()
        .get(format!(
            "{}/api/events/stream/?after={}",
            app.base_url,
            got_ids[got_ids.len() - 1]
        ))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert!(
        raw.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut raw = raw;
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), raw.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let message = text.split("\n\n").next().unwrap();
    assert!(message.contains(&format!("id: {}\n", live.id)), "{message}");
    let data = message
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["id"], live.id.as_str());
    assert_eq!(event["resource_id"], fourth.as_str());
    app.stop().await;
}

/// On PostgreSQL a transaction can take its stream position before another and commit after it. The
/// stream holds the later event back until the earlier transaction ends, so a reader resuming after the
/// later one never passes the earlier one by. (On SQLite writers take turns, so it cannot happen; the
/// test then checks that an event written inside a transaction appears once it commits.)
async fn an_event_committed_after_a_later_one_is_not_skipped(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.user(Tier::Advanced).await;
    let mut stream = client.event_stream(None).await.unwrap();
    let store = app.services().store();
    let mut tx = store.begin().await.unwrap();
    record(
        &mut tx,
        NewEvent {
            account_id: &account,
            resource_type: "account",
            resource_id: &account,
            kind: "low_balance_24h",
            from: None,
            to: None,
            actor: "system",
            cause: "a long transaction",
            sequence: 1,
        },
        START_MS,
    )
    .await
    .unwrap();
    let later = if store.backend() == Backend::Postgres {
        let id = client
            .create_firewall(&ssh_firewall("later"))
            .await
            .unwrap()
            .data
            .id;
        assert!(
            quiet_for(&mut stream, Duration::from_millis(1500)).await,
            "the later event waits for the earlier transaction"
        );
        Some(id)
    } else {
        None
    };
    tx.commit().await.unwrap();
    let first = next(&mut stream).await;
    assert_eq!(
        first.kind, "low_balance_24h",
        "the earlier transaction's event first"
    );
    if let Some(later) = later {
        let second = next(&mut stream).await;
        assert_eq!(second.resource_id, later);
        // Resuming after the slow event gives the later one, and resuming after the later one nothing.
        let mut resumed = client.event_stream(Some(&first.id)).await.unwrap();
        assert_eq!(next(&mut resumed).await.id, second.id);
        let mut resumed = client.event_stream(Some(&second.id)).await.unwrap();
        assert!(quiet_for(&mut resumed, Duration::from_millis(700)).await);
    }
    app.stop().await;
}

async fn bad_cursors_are_refused_and_other_accounts_stay_out(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _, key) = app.user_with_key(Tier::Advanced).await;
    let (other, _) = app.user(Tier::Advanced).await;
    other
        .create_firewall(&ssh_firewall("theirs"))
        .await
        .unwrap();
    let theirs = all_events(&other).await[0].id.clone();

    for after in ["evt-nope", theirs.as_str()] {
        let e = client
            .event_stream(Some(after))
            .await
            .err()
            .expect("refused");
        assert_eq!(e.status(), Some(400));
        assert!(
            e.field_errors().unwrap().contains_key("Last-Event-ID"),
            "{e:?}"
        );
    }
    let raw = crate::common::http_client()
        .get(format!(
            "{}/api/events/stream/?after=evt-nope",
            app.base_url
        ))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert!(body["errors"]["after"].is_array(), "{body}");
    let anonymous = app.anonymous().event_stream(None).await.err().unwrap();
    assert_eq!(anonymous.status(), Some(401));

    // A stream ends once the key it opened with is revoked (checked every few seconds).
    let (revoked, _, revoked_key) = app.user_with_key(Tier::Advanced).await;
    let mut doomed = revoked.event_stream(None).await.unwrap();
    let key_id = revoked.api_keys().await.unwrap().data.api_keys[0]
        .id
        .clone();
    revoked.delete_api_key(&key_id).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(15), doomed.next())
        .await
        .expect("the stream ends");
    assert!(matches!(ended, Ok(None)), "{ended:?}");
    let again = revoked.event_stream(None).await.err().unwrap();
    assert_eq!(again.status(), Some(401), "{revoked_key} is revoked");

    let mut stream = client.event_stream(None).await.unwrap();
    other
        .create_firewall(&ssh_firewall("theirs-too"))
        .await
        .unwrap();
    let mine = client
        .create_firewall(&ssh_firewall("mine"))
        .await
        .unwrap()
        .data
        .id;
    assert_eq!(
        next(&mut stream).await.resource_id,
        mine,
        "only the account's own events"
    );
    app.stop().await;
}

/// Writers on several connections commit in any order while a reader drops its stream every few events and
/// resumes with the last id it saw: it ends with every event of the account, each once.
async fn a_reader_reconnecting_during_concurrent_writes_gets_every_event_once(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Advanced).await;
    let mut stream = client.event_stream(None).await.unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                for n in 0..5 {
                    client
                        .create_firewall(&ssh_firewall(&format!("w{w}-{n}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut got: Vec<String> = Vec::new();
    while got.len() < 20 {
        got.push(next(&mut stream).await.id);
        if got.len().is_multiple_of(3) {
            stream = client
                .event_stream(got.last().map(String::as_str))
                .await
                .unwrap();
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(quiet_for(&mut stream, Duration::from_millis(700)).await);
    let all: BTreeSet<String> = all_events(&client)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all.len(), 20);
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert_eq!(got.len(), 20, "each once: {got:?}");
    app.stop().await;
}

/// A firewall name not used before.
fn unique(name: &str) -> String {
    format!(
        "{name}-{}",
        barrack_core::ids::random_alphanumeric(6).to_lowercase()
    )
}

/// A new ordinary account with a log-in: a client on its API key (to write events) and the tokens.
async fn logged_in(app: &TestApp) -> (Client, TokenPair) {
    let (_, email, by_key) = ordinary_account(app, "stream", Tier::Advanced).await;
    let tokens = app
        .anonymous()
        .obtain_token(&TokenObtainPair {
            email,
            password: ORDINARY_PASSWORD.into(),
            tier: Some(Tier::Advanced),
        })
        .await
        .unwrap()
        .data;
    (by_key, tokens)
}

/// A stream opened with the access token, once it has delivered an event written through the key (so
/// what was written before it opened is behind it).
async fn token_stream(app: &TestApp, by_key: &Client, tokens: &TokenPair) -> EventStream {
    let mut stream = app
        .admin
        .with_bearer(&tokens.access)
        .event_stream(None)
        .await
        .unwrap();
    let before = by_key
        .create_firewall(&ssh_firewall(&unique("before")))
        .await
        .unwrap()
        .data
        .id;
    while next(&mut stream).await.resource_id != before {}
    stream
}

/// The stream ends within [`ENDS_WITHIN`], with no event; when `write` says so, an event is written
/// through the key first (it must not reach the stream).
async fn ends_without_more_events(
    mut stream: EventStream,
    by_key: &Client,
    write: bool,
    what: &str,
) {
    if write {
        by_key
            .create_firewall(&ssh_firewall(&unique("after")))
            .await
            .unwrap();
    }
    let ended = tokio::time::timeout(ENDS_WITHIN, stream.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: the stream is still open after {ENDS_WITHIN:?}"));
    assert!(matches!(ended, Ok(None)), "{what}: {ended:?}");
}

/// A stream opened with an access token lasts no longer than the token would work in a request: it ends
/// after the log-in's log-out, a password change, and the account's disabling, within the interval a
/// stream re-checks its caller, and an event written after any of them never reaches it. API keys of the
/// same account keep their streams.
async fn a_token_stream_ends_with_its_session(db: Db) {
    let app = TestApp::start(db).await;
    let (out_key, out_tokens) = logged_in(&app).await;
    let (changed_key, changed_tokens) = logged_in(&app).await;
    let (disabled_key, disabled_tokens) = logged_in(&app).await;
    let (staying_key, staying_tokens) = logged_in(&app).await;
    let logging_out = token_stream(&app, &out_key, &out_tokens).await;
    let changing = token_stream(&app, &changed_key, &changed_tokens).await;
    let disabling = token_stream(&app, &disabled_key, &disabled_tokens).await;
    let mut staying = token_stream(&app, &staying_key, &staying_tokens).await;
    let mut by_key = out_key.event_stream(None).await.unwrap();

    app.anonymous().logout(&out_tokens.refresh).await.unwrap();
    app.admin
        .with_bearer(&changed_tokens.access)
        .change_password("correct horse battery", "a brand new password")
        .await
        .unwrap();
    let disabled = disabled_key.profile().await.unwrap().data.id;
    app.admin.admin_disable_user(&disabled).await.unwrap();
    for tokens in [&out_tokens, &changed_tokens, &disabled_tokens] {
        let refused = app
            .admin
            .with_bearer(&tokens.access)
            .profile()
            .await
            .unwrap_err();
        assert_eq!(refused.status(), Some(401), "{refused}");
    }
    tokio::join!(
        ends_without_more_events(logging_out, &out_key, true, "log-out"),
        ends_without_more_events(changing, &changed_key, true, "password change"),
        // Nothing to send: the periodic check ends it.
        ends_without_more_events(disabling, &disabled_key, false, "disabled account"),
    );

    // Another log-in's stream, and the logged-out account's key stream, go on.
    let after = staying_key
        .create_firewall(&ssh_firewall("after"))
        .await
        .unwrap()
        .data
        .id;
    assert_eq!(next(&mut staying).await.resource_id, after);
    let mine = out_key
        .create_firewall(&ssh_firewall("mine"))
        .await
        .unwrap()
        .data
        .id;
    let mut seen = next(&mut by_key).await;
    while seen.resource_id != mine {
        seen = next(&mut by_key).await;
    }
    app.stop().await;
}

/// A stream opened with an access token ends once the token expires (tokens follow real time, so the
/// test uses a three-second token), and an event written afterwards never reaches it.
async fn a_token_stream_ends_when_its_token_expires(db: Db) {
    let app = TestApp::start_with(db, |config| config.tokens.access_ttl_seconds = 3).await;
    let (by_key, tokens) = logged_in(&app).await;
    let stream = token_stream(&app, &by_key, &tokens).await;
    let bearer = app.admin.with_bearer(&tokens.access);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while bearer.profile().await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a three-second token still works"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ends_without_more_events(stream, &by_key, true, "expired token").await;

    // A stream of a fresh token of the same log-in is quiet until something happens, then ends too.
    let fresh = app
        .anonymous()
        .refresh_token(&tokens.refresh)
        .await
        .unwrap()
        .data;
    let fresh = TokenPair {
        access: fresh.access,
        refresh: fresh.refresh,
    };
    let stream = token_stream(&app, &by_key, &fresh).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ends_without_more_events(stream, &by_key, false, "expired token, quiet stream").await;
    app.stop().await;
}
