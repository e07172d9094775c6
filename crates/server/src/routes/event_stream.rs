//! The account's events as server-sent events, resumable with `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use barrack_api::ErrorResponse;
use barrack_api::webhooks::EventStreamQuery;
use barrack_core::accounts::Caller;
use barrack_core::accounts::event_stream::EventStreamService;
use barrack_store::events::StreamCursor;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{ApiError, ApiResult, Auth, Query};

/// How often a stream with nothing to send looks for new events. Polling serves every replica alike: an
/// event written through another server is seen as soon as through this one.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a quiet stream checks that its caller may still read (its key or session live, its token
/// unexpired, its account enabled); it ends when not. A stream with events to send checks before
/// sending them.
const REAUTHORISE_INTERVAL: Duration = Duration::from_secs(5);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

/// Stream the account's events
///
/// Server-sent events: each message has `id:` (the event id) and `data:` (the event, as in
/// `GET /api/events/`), in the order events became final. A client that reconnects with `Last-Event-ID`
/// (or `?after=`) gets exactly the events after that one; without either the stream starts with events
/// written from now on. Comment lines keep a quiet stream open.
#[utoipa::path(get, path = "/api/events/stream/", tag = "Events", params(EventStreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (as `after`)")),
    responses((status = 200, description = "The account's events as server-sent events",
               content((barrack_api::instances::Event = "text/event-stream"))),
              (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn stream_events(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    Query(query): Query<EventStreamQuery>,
) -> ApiResult<Response> {
    let (after, field) = match headers.get("last-event-id") {
        Some(value) => {
            let value = value.to_str().map_err(|_| {
                ApiError(barrack_core::Error::field(
                    "Last-Event-ID",
                    "Last-Event-ID must be an event id",
                ))
            })?;
            (Some(value.to_string()), "Last-Event-ID")
        }
        None => (query.after, "after"),
    };
    let service = state.services.event_stream.clone();
    let cursor = service.start(&caller, after.as_deref(), field).await?;
    let reader = Reader {
        service,
        caller,
        cursor,
        pending: VecDeque::new(),
        closing: state.services.context.closing.subscribe(),
        authorised_at: Instant::now(),
    };
    let events = futures::stream::unfold(reader, |mut reader| async move {
        let event = reader.next().await?;
        Some((Ok::<_, Infallible>(event), reader))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    // Proxies that buffer answers (nginx) would hold events back.
    response
        .headers_mut()
        .insert("X-Accel-Buffering", HeaderValue::from_static("no"));
    Ok(response)
}

struct Reader {
    service: EventStreamService,
    caller: Caller,
    cursor: StreamCursor,
    pending: VecDeque<(barrack_api::instances::Event, StreamCursor)>,
    /// Turns true when the server stops: the stream ends, and the client reconnects elsewhere.
    closing: watch::Receiver<bool>,
    /// When the caller was last found still allowed.
    authorised_at: Instant,
}

impl Reader {
    /// The next message, once there is one; `None` when the server is stopping.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some((event, place)) = self.pending.pop_front() {
                self.cursor = place;
                let data = serde_json::to_string(&event).unwrap_or_default();
                return Some(Event::default().id(event.id).data(data));
            }
            if *self.closing.borrow() {
                return None;
            }
            if self.authorised_at.elapsed() >= REAUTHORISE_INTERVAL {
                match self.service.still_allowed(&self.caller).await {
                    Ok(true) => self.authorised_at = Instant::now(),
                    Ok(false) => return None,
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream could not check its caller")
                    }
                }
            }
            match self.service.next(&self.caller, self.cursor).await {
                Ok(None) => return None,
                Ok(Some(batch)) if !batch.is_empty() => {
                    self.authorised_at = Instant::now();
                    self.pending.extend(batch);
                    continue;
                }
                Ok(Some(_)) => {}
                // The database may be back at the next look; the stream stays where it was.
                Err(e) => tracing::warn!(error = %e, "event stream could not read events"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = self.closing.changed() => {}
            }
        }
    }
}
