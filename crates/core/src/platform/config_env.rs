//! Layering the configuration: a file over the built-in defaults, then `BARRACK_*` environment variables
//! over the scalar keys and the lists of strings (comma-separated) they name.

use super::config::ConfigError;

/// Overlays `overlay` on `base`: tables merge key by key, everything else (arrays included) is replaced.
pub(super) fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies `BARRACK_<PATH>` variables to the scalar keys and lists of strings they name; returns what
/// it set, as (dotted key, variable), so that an error about a key can name the variable that set it.
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: &[(String, String)],
    optional_keys: &[&str],
) -> Result<Vec<(String, String)>, ConfigError> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    for key in optional_keys {
        let path: Vec<&str> = key.split('.').collect();
        if let Some(value) = lookup(&env_name(&path)) {
            insert_at(table, &path, toml::Value::String(value));
        }
    }
    // The walk meets the optional keys just inserted too, and notes them with the rest.
    let mut set = Vec::new();
    override_from_env(table, &mut Vec::new(), &lookup, &mut set)?;
    Ok(set)
}

/// `message` (an error about the configuration) with the variables that set the keys it names.
pub(super) fn naming_variables(message: String, set: &[(String, String)]) -> String {
    let named: Vec<&str> = set
        .iter()
        .filter(|(key, _)| message.contains(&format!("`{key}`")))
        .map(|(_, name)| name.as_str())
        .collect();
    if named.is_empty() {
        message
    } else {
        format!("{message} (set by {})", named.join(", "))
    }
}

/// Overrides each scalar key (and list of strings) whose variable is set, noting it in `set`.
fn override_from_env(
    table: &mut toml::Table,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    set: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        path.push(key.clone());
        match value {
            toml::Value::Table(inner) => override_from_env(inner, path, lookup, set)?,
            scalar => {
                let name = env_name(&path.iter().map(String::as_str).collect::<Vec<_>>());
                if let Some(text) = lookup(&name) {
                    *scalar = parse_like(scalar, &text).map_err(|message| ConfigError::Env {
                        name: name.clone(),
                        message,
                    })?;
                    set.push((path.join("."), name));
                }
            }
        }
        path.pop();
    }
    Ok(())
}

/// Sets the key at a dotted path, creating the sections on the way.
pub(super) fn insert_at(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    let Some((last, sections)) = path.split_last() else {
        return;
    };
    let mut table = table;
    for section in sections {
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(inner) = entry else {
            return;
        };
        table = inner;
    }
    table.insert(last.to_string(), value);
}

fn env_name(path: &[&str]) -> String {
    format!("BARRACK_{}", path.join("_").to_uppercase())
}

/// Parses `text` as a value of the same TOML type as `current`.
fn parse_like(current: &toml::Value, text: &str) -> Result<toml::Value, String> {
    Ok(match current {
        toml::Value::String(_) => toml::Value::String(text.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| format!("'{text}' is not a whole number"))?,
        ),
        toml::Value::Float(_) => toml::Value::Float(
            text.trim()
                .parse()
                .map_err(|_| format!("'{text}' is not a number"))?,
        ),
        // A list of strings, comma-separated (a list of sections cannot be written so).
        toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_string()))
                .collect(),
        ),
        toml::Value::Boolean(_) => match text.trim() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(format!("'{text}' is not true or false")),
        },
        other => {
            return Err(format!(
                "cannot override a {} from the environment; set it in the configuration file",
                other.type_str()
            ));
        }
    })
}

/// The environment variables that configure Barrack.
pub fn barrack_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("BARRACK_"))
        .collect()
}
