//! The event log every resource writes to: who changed what, from which state to which, and why. Each
//! domain records its own resources' events through [`record`], in the transaction of the change.

use barrack_api::instances::Event;
use barrack_store::Tx;
use barrack_store::events::{self, EventRow};

use crate::Result;
use crate::platform::clock::format_ms;
use crate::platform::ids::random_alphanumeric;
use crate::platform::webhooks;

/// One entry of the event log.
pub struct NewEvent<'a> {
    pub account_id: &'a str,
    /// `instance`, `volume`, `snapshot`, `image`, `firewall`.
    pub resource_type: &'static str,
    pub resource_id: &'a str,
    /// `created`, `status_changed`, or what else happened to the resource.
    pub kind: &'a str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub actor: &'a str,
    pub cause: &'a str,
    /// The resource's generation after the change, which orders its events.
    pub sequence: i64,
}

/// `created` for a resource that had no state before, `status_changed` otherwise.
pub fn change_kind(from: Option<&str>) -> &'static str {
    if from.is_none() {
        "created"
    } else {
        "status_changed"
    }
}

/// Every event type the log holds, as webhooks filter them: what each resource records ([`record`]
/// checks, in the builds the tests run, that nothing else is written).
pub const EVENT_TYPES: &[&str] = &[
    "instance.created",
    "instance.status_changed",
    "instance.lease_changed",
    "instance.lease_expiring",
    "instance.lease_expired",
    "volume.created",
    "volume.status_changed",
    "snapshot.created",
    "snapshot.status_changed",
    "snapshot.restored",
    "image.created",
    "image.status_changed",
    "firewall.created",
    "firewall.status_changed",
    "firewall.attachment_changed",
    "firewall.rules_changed",
    "account.low_balance_24h",
    "account.low_balance_1h",
    "account.storage_suspended",
    "account.storage_deletion_notice",
    "account.storage_deletion_due",
    "account.storage_resumed",
];

/// Whether a webhook's filter entry names events the log holds: a type of [`EVENT_TYPES`], or
/// `resource.*` for a resource that has some.
pub fn known_event_type(entry: &str) -> bool {
    match entry.strip_suffix(".*") {
        Some(resource) => EVENT_TYPES
            .iter()
            .any(|t| t.split_once('.').is_some_and(|(r, _)| r == resource)),
        None => EVENT_TYPES.contains(&entry),
    }
}

/// An event's type as webhooks filter it: `instance.status_changed`.
pub fn event_type(resource_type: &str, kind: &str) -> String {
    format!("{resource_type}.{kind}")
}

/// The API's view of an event.
pub fn event_view(row: EventRow) -> Event {
    Event {
        id: row.id,
        resource_type: row.resource_type,
        resource_id: row.resource_id,
        kind: row.kind,
        from_status: row.from_status,
        to_status: row.to_status,
        actor: row.actor,
        cause: row.cause,
        created_at: format_ms(row.created_at),
    }
}

/// Writes `event` in the caller's transaction, with its deliveries to the account's webhooks.
pub async fn record(tx: &mut Tx, event: NewEvent<'_>, now: i64) -> Result<()> {
    debug_assert!(
        EVENT_TYPES.contains(&event_type(event.resource_type, event.kind).as_str()),
        "{}.{} is not in EVENT_TYPES",
        event.resource_type,
        event.kind
    );
    let row = EventRow {
        id: format!("evt-{}", random_alphanumeric(16)),
        account_id: event.account_id.to_string(),
        resource_type: event.resource_type.into(),
        resource_id: event.resource_id.to_string(),
        kind: event.kind.into(),
        from_status: event.from.map(str::to_string),
        to_status: event.to.map(str::to_string),
        actor: event.actor.to_string(),
        cause: event.cause.to_string(),
        sequence: event.sequence,
        created_at: now,
    };
    if events::insert(&mut *tx, &row).await? {
        webhooks::enqueue_deliveries(tx, &row).await?;
    }
    Ok(())
}
