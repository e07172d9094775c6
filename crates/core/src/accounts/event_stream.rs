//! The account's event stream: its events in the order they became final, resumable after any of them.

use std::sync::Arc;

use barrack_api::instances::Event;
use barrack_store::events::StreamCursor;
use barrack_store::token_sessions;

use crate::accounts::{Caller, Credential};
use crate::platform::clock::system_now_ms;
use crate::platform::events::event_view;
use crate::{Context, Error, Result};

/// Events read from the database at once.
const BATCH: u32 = 100;

#[derive(Clone)]
pub struct EventStreamService {
    context: Arc<Context>,
}

impl EventStreamService {
    pub fn new(context: Arc<Context>) -> EventStreamService {
        EventStreamService { context }
    }

    /// Where a stream begins: after the account's event `after` (`field` names where it came from, for
    /// the 400 when the account has no such event), or with the events written from now on.
    pub async fn start(
        &self,
        caller: &Caller,
        after: Option<&str>,
        field: &str,
    ) -> Result<StreamCursor> {
        let store = &self.context.store;
        match after.map(str::trim).filter(|a| !a.is_empty()) {
            Some(id) => store
                .stream_cursor_of(caller.account_id(), id)
                .await?
                .ok_or_else(|| Error::field(field, format!("No event '{id}' in this account"))),
            None => Ok(store.stream_start().await?),
        }
    }

    /// Whether the stream's caller may still read, as a new request with its credential would: the
    /// account not disabled; the API key it opened with not revoked; or its access token not expired
    /// and its session neither ended (log-out, password change, reuse of a spent refresh token, the
    /// account disabled) nor another account's; or its dashboard sign-in still live. A stream outlives
    /// the request that authenticated it.
    pub async fn still_allowed(&self, caller: &Caller) -> Result<bool> {
        let store = &self.context.store;
        Ok(match &caller.credential {
            Credential::ApiKey { id, .. } => {
                let account = store.account_by_id(caller.account_id()).await?;
                account.is_some_and(|a| a.disabled_at.is_none())
                    && store
                        .live_api_keys(caller.account_id())
                        .await?
                        .iter()
                        .any(|k| &k.id == id)
            }
            Credential::Token {
                session_id,
                expires_at,
            } => {
                // The token's expiry, in real time as it was checked when the stream opened.
                *expires_at > system_now_ms() / 1000
                    && token_sessions::live_session(&mut &*store, session_id)
                        .await?
                        .is_some_and(|(s, _)| s.account_id == caller.account_id())
            }
            Credential::WebSession { id } => store
                .live_web_session(id, system_now_ms())
                .await?
                .is_some_and(|(s, _)| s.account_id == caller.account_id()),
        })
    }

    /// The next final events after `cursor`, each with its place (empty when there are none yet), or
    /// `None` when the caller may no longer read. Events are handed over only after the caller is
    /// found still allowed, so none written after its key or session ended reaches it.
    pub async fn next(
        &self,
        caller: &Caller,
        cursor: StreamCursor,
    ) -> Result<Option<Vec<(Event, StreamCursor)>>> {
        let rows = self
            .context
            .store
            .stream_events_after(caller.account_id(), cursor, BATCH)
            .await?;
        if !rows.is_empty() && !self.still_allowed(caller).await? {
            return Ok(None);
        }
        Ok(Some(
            rows.into_iter()
                .map(|(row, place)| (event_view(row), place))
                .collect(),
        ))
    }
}
