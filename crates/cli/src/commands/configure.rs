//! `barrack configure`: writes a profile, asking for what the flags did not give.

use serde::Serialize;

use super::{Output, ask, ask_secret};
use crate::config::{self, ConfigFile, DEFAULT_API_URL, DEFAULT_PROFILE};
use crate::error::CliError;
use crate::output::View;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// API base URL, e.g. http://127.0.0.1:8080 (asked for when not given)
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// API key, sk_... (asked for when not given; an empty answer keeps the current one)
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
}

/// What `-o json` shows: never the key.
#[derive(Serialize)]
struct Saved<'a> {
    profile: &'a str,
    api_url: &'a str,
    api_key_set: bool,
    config_file: String,
}

pub fn run(args: Args, profile: Option<&str>) -> Result<Output, CliError> {
    let name = profile.unwrap_or(DEFAULT_PROFILE);
    let path = config::config_path(config::process_env).ok_or_else(|| {
        CliError::Other(
            "cannot tell where the config file goes: set BARRACK_CLI_CONFIG or HOME".into(),
        )
    })?;
    let mut file = ConfigFile::load(&path)?;
    let current = file.profiles.get(name).cloned().unwrap_or_default();

    let api_url = match args.api_url {
        Some(url) => url,
        None => ask(
            "API URL",
            Some(current.api_url.as_deref().unwrap_or(DEFAULT_API_URL)),
        )?,
    };
    let api_url =
        config::api_url(&api_url).map_err(|e| CliError::Usage(format!("the API URL: {e}")))?;

    let api_key = match args.api_key {
        Some(key) => Some(key),
        None => {
            let question = match &current.api_key {
                Some(key) => format!("API key [keep {}]", masked(key)),
                None => "API key (empty for none)".to_string(),
            };
            Some(ask_secret(&question)?).filter(|k| !k.is_empty())
        }
    }
    .map(|k| k.trim().to_string())
    .or(current.api_key);
    if let Some(key) = &api_key
        && !key.starts_with("sk_")
    {
        return Err(CliError::Usage("an API key starts with sk_".into()));
    }

    let profile = file.profiles.entry(name.to_string()).or_default();
    profile.api_url = Some(api_url);
    profile.api_key = api_key;
    let saved = Saved {
        profile: name,
        api_url: profile.api_url.as_deref().unwrap_or_default(),
        api_key_set: profile.api_key.is_some(),
        config_file: path.display().to_string(),
    };
    let text = format!("Saved profile '{name}' to {}", saved.config_file);
    let output = Output::new(&saved, View::Text(text));
    file.save(&path)?;
    Ok(output)
}

/// Enough of a key to recognise it, not to use it.
fn masked(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk_...{tail}")
}
