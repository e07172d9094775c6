//! The account's event stream: its events in the order they became final, resumable after any of them.

use std::sync::Arc;

use barrack_api::instances::Event;
use barrack_store::events::StreamCursor;

use crate::accounts::{Caller, Credential};
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

    /// Whether the stream's caller may still read: the account not disabled, and the API key it opened
    /// with (if it was one) not revoked. A stream outlives the request that authenticated it.
    pub async fn still_allowed(&self, caller: &Caller) -> Result<bool> {
        let store = &self.context.store;
        let account = store.account_by_id(caller.account_id()).await?;
        if account.is_none_or(|a| a.disabled_at.is_some()) {
            return Ok(false);
        }
        Ok(match &caller.credential {
            Credential::ApiKey { id, .. } => store
                .live_api_keys(caller.account_id())
                .await?
                .iter()
                .any(|k| &k.id == id),
            Credential::Token => true,
        })
    }

    /// The next final events after `cursor`, each with its place (empty when there are none yet).
    pub async fn next(
        &self,
        caller: &Caller,
        cursor: StreamCursor,
    ) -> Result<Vec<(Event, StreamCursor)>> {
        let rows = self
            .context
            .store
            .stream_events_after(caller.account_id(), cursor, BATCH)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(row, place)| (event_view(row), place))
            .collect())
    }
}
