//! `barrack login`: from an email and a password to a working profile, for people who signed up and have
//! no API key yet. Signs in, creates a key with the session, and saves the key in the profile.

use barrack_api::Tier;
use barrack_api::account::TokenObtainPair;
use serde::Serialize;

use super::{Ctx, Output, read_password, tier_parser};
use crate::config::{self, ConfigFile, DEFAULT_API_URL, DEFAULT_PROFILE, KeySource, Settings};
use crate::error::CliError;
use crate::output::View;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The account's email address
    #[arg(long)]
    email: String,
    /// API base URL [default: BARRACK_API_URL, else the profile's, else http://127.0.0.1:8080]
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// A name to recognise the new key by
    #[arg(long, value_name = "NAME", default_value = "barrack-cli")]
    key_name: String,
    /// The tier requests made with the key act in (its regions, GPU models and images: FINLAND-1 and
    /// the other advanced regions need `advanced`)
    #[arg(long, value_parser = tier_parser(), default_value = "legacy")]
    tier: Tier,
}

/// What `-o json` shows: never the key.
#[derive(Serialize)]
struct LoggedIn {
    email: String,
    profile: String,
    api_url: String,
    config_file: String,
    api_key_id: String,
    api_key_name: String,
    tier: Tier,
}

pub async fn run(args: Args, profile: Option<&str>) -> Result<Output, CliError> {
    let name = profile.unwrap_or(DEFAULT_PROFILE);
    let path = config::config_path(config::process_env).ok_or_else(|| {
        CliError::Other(
            "cannot tell where the config file goes: set BARRACK_CLI_CONFIG or HOME".into(),
        )
    })?;
    let mut file = ConfigFile::load(&path)?;
    let current = file.profiles.get(name).cloned().unwrap_or_default();
    let api_url = args
        .api_url
        .or_else(|| config::process_env("BARRACK_API_URL").filter(|u| !u.is_empty()))
        .or(current.api_url)
        .unwrap_or_else(|| DEFAULT_API_URL.to_string());
    let api_url =
        config::api_url(&api_url).map_err(|e| CliError::Usage(format!("the API URL: {e}")))?;

    let password = read_password()?;
    let ctx = Ctx::new(Settings {
        api_url: api_url.clone(),
        api_key: None,
        key_source: KeySource::None,
    })?;
    let request = TokenObtainPair {
        email: args.email.clone(),
        password,
        tier: Some(args.tier),
    };
    let tokens = ctx
        .call_anonymous(ctx.client.anonymous().obtain_token(&request))
        .await?
        .data;
    let key = ctx
        .call_anonymous(
            ctx.client
                .with_bearer(&tokens.access)
                .create_api_key(&args.key_name, args.tier),
        )
        .await
        .map_err(|e| match e {
            // Signed in before, from another machine or profile: the default name is taken.
            CliError::Api { error, hint: None } if error.status() == Some(409) => CliError::Api {
                error,
                hint: Some(format!(
                    "name this key with --key-name (the account already has one named '{}'; \
                     `barrack api-keys list` shows them)",
                    args.key_name
                )),
            },
            e => e,
        })?
        .data;

    let stored = file.profiles.entry(name.to_string()).or_default();
    stored.api_url = Some(api_url.clone());
    stored.api_key = Some(key.key.clone());
    file.save(&path)?;

    let done = LoggedIn {
        email: args.email,
        profile: name.to_string(),
        api_url,
        config_file: path.display().to_string(),
        api_key_id: key.id.clone(),
        api_key_name: key.name.clone(),
        tier: key.tier,
    };
    let text = format!(
        "Signed in as {} and saved a new API key ({}, {}, tier {}) in profile '{}' of {}",
        done.email, done.api_key_name, done.api_key_id, done.tier, done.profile, done.config_file
    );
    let mut output = Output::new(&done, View::Text(text)).ids([key.id]);
    if config::process_env("BARRACK_API_KEY").is_some_and(|k| !k.is_empty()) {
        output = output.notice(
            "BARRACK_API_KEY is set and overrides the saved key: unset it to use the profile.",
        );
    }
    Ok(output)
}
