//! Labels of resources: their rules, the `?label=` filters of lists, and changing a resource's labels.
//! Each domain writes the labels of a new resource in its create transaction and shows them in its views.

use barrack_api::labels::{
    Labels, LabelsPatch, LabelsView, MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_LABELS,
};
use barrack_store::labels::{self, LabelSelector};
use barrack_store::{Store, Tx};

use crate::platform::validate::Validator;
use crate::{Error, Result};

/// The resources that carry labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labelled {
    Instance,
    Volume,
    Snapshot,
    Image,
    Firewall,
}

impl Labelled {
    /// The `resource_type` of its labels (and of its events).
    pub fn as_str(self) -> &'static str {
        match self {
            Labelled::Instance => "instance",
            Labelled::Volume => "volume",
            Labelled::Snapshot => "snapshot",
            Labelled::Image => "image",
            Labelled::Firewall => "firewall",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Labelled::Instance => "instances",
            Labelled::Volume => "volumes",
            Labelled::Snapshot => "snapshots",
            Labelled::Image => "images",
            Labelled::Firewall => "firewalls",
        }
    }

    /// How a missing one is named in a 404.
    fn title(self) -> &'static str {
        match self {
            Labelled::Instance => "Instance",
            Labelled::Volume => "Volume",
            Labelled::Snapshot => "Snapshot",
            Labelled::Image => "Image",
            Labelled::Firewall => "Firewall",
        }
    }
}

/// A key: 1–63 lowercase letters, digits, `.`, `_`, `/`, `-`, starting and ending with a letter or digit.
pub fn key_ok(key: &str) -> bool {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !key.is_empty()
        && key.len() <= MAX_LABEL_KEY
        && key.starts_with(edge)
        && key.ends_with(edge)
        && key
            .chars()
            .all(|c| edge(c) || matches!(c, '.' | '_' | '/' | '-'))
}

fn check_pair(v: &mut Validator, field: &str, key: &str, value: Option<&str>) {
    let at = format!("{field}.{key}");
    if !key_ok(key) {
        v.add(
            &at,
            format!(
                "Label keys are 1 to {MAX_LABEL_KEY} lowercase letters, digits, '.', '_', '/' and '-', \
                 starting and ending with a letter or digit"
            ),
        );
    }
    if let Some(value) = value {
        if value.chars().count() > MAX_LABEL_VALUE {
            v.add(
                &at,
                format!("Label values are at most {MAX_LABEL_VALUE} characters"),
            );
        }
        if value.chars().any(char::is_control) {
            v.add(&at, "Label values cannot contain control characters");
        } else if let Some(c) = value.chars().find(|&c| super::validate::is_bidi_control(c)) {
            // They reorder what is shown around them, as in every other free text.
            v.add(
                &at,
                format!(
                    "Label values cannot contain bidirectional formatting characters such as U+{:04X}",
                    u32::from(c)
                ),
            );
        }
    }
}

/// Adds the faults of `labels` under `field` (`labels`, each key's at `labels.<key>`).
pub fn check_labels(v: &mut Validator, field: &str, labels: &Labels) {
    if labels.len() > MAX_LABELS {
        // Not checked one by one: ten thousand labels would be ten thousand messages.
        v.add(field, format!("At most {MAX_LABELS} labels per resource"));
        return;
    }
    for (key, value) in labels {
        check_pair(v, field, key, Some(value));
    }
}

/// The `?label=` parameters of a list: `key=value` or `key`; a bad one is 400 on `label`.
pub fn selectors(params: &[String]) -> Result<Vec<LabelSelector>> {
    if params.len() > MAX_LABELS {
        return Err(Error::field(
            "label",
            format!("At most {MAX_LABELS} label filters"),
        ));
    }
    params
        .iter()
        .map(|param| {
            let (key, value) = match param.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (param.as_str(), None),
            };
            let mut v = Validator::new();
            check_pair(&mut v, "label", key, value);
            if v.error_count() > 0 {
                return Err(Error::field(
                    "label",
                    format!("'{param}' is not key=value or key with a valid label key"),
                ));
            }
            Ok(LabelSelector {
                key: key.to_string(),
                value: value.map(str::to_string),
            })
        })
        .collect()
}

/// Writes the labels of a resource created in `tx` (checked already).
pub async fn write(
    tx: &mut Tx,
    kind: Labelled,
    resource_id: &str,
    account_id: &str,
    labels: &Labels,
) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    labels::replace(
        tx,
        kind.as_str(),
        kind.table(),
        resource_id,
        account_id,
        labels,
    )
    .await?;
    Ok(())
}

/// `PATCH /api/<resources>/{id}/labels/`: merges `patch` into the labels of the account's resource.
pub async fn patch(
    store: &Store,
    account_id: &str,
    kind: Labelled,
    id: &str,
    patch: LabelsPatch,
) -> Result<LabelsView> {
    let mut v = Validator::new();
    for (key, value) in &patch.labels {
        check_pair(&mut v, "labels", key, value.as_deref());
    }
    v.finish()?;
    let mut tx = store.begin().await?;
    if !labels::lock_resource(&mut tx, kind.table(), id, account_id).await? {
        return Err(Error::not_found(kind.title(), id));
    }
    let mut current = labels::of_resource(&mut tx, kind.as_str(), id).await?;
    for (key, value) in patch.labels {
        match value {
            Some(value) => current.insert(key, value),
            None => current.remove(&key),
        };
    }
    if current.len() > MAX_LABELS {
        return Err(Error::field(
            "labels",
            format!("At most {MAX_LABELS} labels per resource"),
        ));
    }
    labels::replace(
        &mut tx,
        kind.as_str(),
        kind.table(),
        id,
        account_id,
        &current,
    )
    .await?;
    tx.commit().await?;
    Ok(LabelsView {
        resource_id: id.to_string(),
        labels: current,
    })
}

/// A view that shows its resource's labels.
pub trait LabelledView {
    fn resource_id(&self) -> &str;
    fn labels_mut(&mut self) -> &mut Labels;
}

macro_rules! labelled_view {
    ($($view:ty => $id:ident),+ $(,)?) => {
        $(impl LabelledView for $view {
            fn resource_id(&self) -> &str {
                &self.$id
            }
            fn labels_mut(&mut self) -> &mut Labels {
                &mut self.labels
            }
        })+
    };
}

labelled_view!(
    barrack_api::volumes::Volume => id,
    barrack_api::snapshots::Snapshot => id,
    barrack_api::images::Image => id,
    barrack_api::firewalls::Firewall => id,
    barrack_api::firewalls::FirewallSummary => id,
);

/// Fills in the labels of `views` of one resource type, read in one statement.
pub async fn fill<V: LabelledView>(store: &Store, kind: Labelled, views: &mut [V]) -> Result<()> {
    let ids: Vec<String> = views.iter().map(|v| v.resource_id().to_string()).collect();
    let mut labels = store.labels_of(kind.as_str(), &ids).await?;
    for view in views {
        if let Some(found) = labels.remove(view.resource_id()) {
            *view.labels_mut() = found;
        }
    }
    Ok(())
}

/// The labels of one resource.
pub async fn of_one(store: &Store, kind: Labelled, id: &str) -> Result<Labels> {
    Ok(store
        .labels_of(kind.as_str(), &[id.to_string()])
        .await?
        .remove(id)
        .unwrap_or_default())
}
