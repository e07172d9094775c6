//! What the commands of labelled resources share: `--label KEY=VALUE` at create, `--label` filters of
//! lists, the `labels` command that changes them, and `--ttl` durations of leases.

use barrack_api::labels::{Labels, LabelsPatch};
use barrack_client::LabelledResource;

use super::Ctx;
use crate::error::CliError;
use crate::output::{Output, View};

/// `KEY=VALUE` of `--label` at create (the server checks the key and value).
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))
}

/// The labels of repeated `--label KEY=VALUE`.
pub fn labels_of(pairs: Vec<(String, String)>) -> Labels {
    pairs.into_iter().collect()
}

/// A duration of `--ttl` in whole minutes: `90m`, `2h`, `1d`, or a number of minutes.
pub fn parse_ttl(text: &str) -> Result<i64, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "m"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration such as 90m, 2h or 1d"))?;
    let minutes = match unit {
        "m" => 1,
        "h" => 60,
        "d" => 24 * 60,
        _ => return Err(format!("'{text}': use m, h or d, such as 90m, 2h or 1d")),
    };
    n.checked_mul(minutes)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// `--set KEY=VALUE` and `--remove KEY` of a `labels` command.
#[derive(Debug, clap::Args)]
pub struct LabelChanges {
    /// Set a label, repeatable
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_label)]
    set: Vec<(String, String)>,
    /// Remove a label, repeatable
    #[arg(long = "remove", value_name = "KEY")]
    remove: Vec<String>,
}

/// Applies `changes` to the labels of resource `id` and prints every label it then has.
pub async fn change_labels(
    ctx: &Ctx,
    resource: LabelledResource,
    id: &str,
    changes: LabelChanges,
) -> Result<Output, CliError> {
    let mut patch = LabelsPatch::default();
    for key in changes.remove {
        patch.labels.insert(key, None);
    }
    for (key, value) in changes.set {
        patch.labels.insert(key, Some(value));
    }
    let data = ctx
        .call(ctx.client.patch_labels(resource, id, &patch))
        .await?
        .data;
    let view = View::Fields(vec![
        ("ID", data.resource_id.clone()),
        ("Labels", labels_text(&data.labels)),
    ]);
    Ok(Output::new(&data, view).ids([data.resource_id.clone()]))
}

/// `key=value, key=value`, or `-` without labels.
pub fn labels_text(labels: &Labels) -> String {
    if labels.is_empty() {
        return "-".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_minutes() {
        assert_eq!(parse_ttl("90m"), Ok(90));
        assert_eq!(parse_ttl("2h"), Ok(120));
        assert_eq!(parse_ttl("1d"), Ok(1440));
        assert_eq!(parse_ttl("45"), Ok(45));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("m").is_err());
        assert!(parse_ttl("").is_err());
    }

    #[test]
    fn labels_need_an_equals_sign() {
        assert_eq!(parse_label("team=ml"), Ok(("team".into(), "ml".into())));
        assert_eq!(parse_label("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_label("team").is_err());
    }
}
