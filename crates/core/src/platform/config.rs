//! Server configuration: one TOML file, `BARRACK_*` environment overrides, secrets from files.
//!
//! The built-in defaults are `config/barrack.example.toml` itself, so the documented example and the
//! behaviour of a server started with no configuration cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use barrack_api::Currency;
use barrack_compute::deadline::Deadlines;
use barrack_compute::libvirt::LibvirtConfig;
use barrack_compute::sim::SimConfig;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use super::billing_config::BillingConfig;
pub use super::catalog_config::{
    CapacityConfig, GpuModelConfig, OsImageConfig, RegionConfig, SnapshotPricingConfig,
    VolumeLimits, VolumeTypeConfig,
};
pub use super::config_env::barrack_env;
use super::config_env::{apply_env, merge, naming_variables};
pub use super::jobs_config::JobsConfig;
pub use super::metrics_config::MetricsConfig;
pub use super::payments_config::{PaymentProviderKind, PaymentsConfig};
pub use super::rate_limit_config::{RateLimitConfig, parse_ip_net};
pub use super::webhooks_config::WebhooksConfig;

pub const EXAMPLE_TOML: &str = include_str!("../../../../config/barrack.example.toml");

/// Keys that have no default and so do not appear as values in the example file (dotted paths for keys
/// of a section).
const OPTIONAL_KEYS: &[&str] = &[
    "database_url",
    "database_url_file",
    "secret",
    "secret_file",
    "token_secret",
    "token_secret_file",
    "payments.webhook_secret",
    "payments.webhook_secret_file",
    "metrics.bearer_token",
    "webhooks.ca_bundle_file",
];

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    #[serde(default)]
    pub database_url: Option<String>,
    #[serde(default)]
    pub database_url_file: Option<PathBuf>,
    pub database_max_connections: u32,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Signs session tokens instead of `secret`, so either can be rotated without revoking the other.
    #[serde(default)]
    pub token_secret: Option<String>,
    #[serde(default)]
    pub token_secret_file: Option<PathBuf>,
    pub open_signup: bool,
    pub body_limit_bytes: usize,
    pub log_format: LogFormat,
    pub driver: DriverKind,
    pub jobs: JobsConfig,
    /// How long each compute driver call may take before it is abandoned and retried.
    #[serde(default)]
    pub deadlines: Deadlines,
    pub simulator: SimConfig,
    /// Real machines (`driver = "libvirt"`); see `config/libvirt.example.toml`.
    #[serde(default)]
    pub libvirt: Option<LibvirtConfig>,
    pub rate_limit: RateLimitConfig,
    /// `GET /metrics` (Prometheus).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Where accounts' webhooks may send.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    pub tokens: TokenConfig,
    pub billing: BillingConfig,
    pub payments: PaymentsConfig,
    pub regions: Vec<RegionConfig>,
    pub gpu_models: Vec<GpuModelConfig>,
    pub capacity: Vec<CapacityConfig>,
    pub volume_types: Vec<VolumeTypeConfig>,
    pub volumes: VolumeLimits,
    pub snapshots: Vec<SnapshotPricingConfig>,
    pub os_images: Vec<OsImageConfig>,
    pub ai: super::ai_config::AiConfig,
}

/// What a secret prints as in debug output.
pub(crate) const REDACTED: &str = "<redacted>";

/// Secrets stay out of debug output: the server and token secrets are replaced, and a database URL keeps
/// everything but its password. Every field is named, so a field added later must be placed here too.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Config {
            listen,
            data_dir,
            database_url,
            database_url_file,
            database_max_connections,
            secret,
            secret_file,
            token_secret,
            token_secret_file,
            open_signup,
            body_limit_bytes,
            log_format,
            driver,
            jobs,
            simulator,
            libvirt,
            rate_limit,
            tokens,
            billing,
            payments,
            regions,
            gpu_models,
            capacity,
            volume_types,
            volumes,
            snapshots,
            os_images,
            ai,
            deadlines,
            metrics,
            webhooks,
        } = self;
        f.debug_struct("Config")
            .field("listen", listen)
            .field("data_dir", data_dir)
            .field(
                "database_url",
                &database_url.as_deref().map(barrack_store::redact_url),
            )
            .field("database_url_file", database_url_file)
            .field("database_max_connections", database_max_connections)
            .field("secret", &secret.as_ref().map(|_| REDACTED))
            .field("secret_file", secret_file)
            .field("token_secret", &token_secret.as_ref().map(|_| REDACTED))
            .field("token_secret_file", token_secret_file)
            .field("open_signup", open_signup)
            .field("body_limit_bytes", body_limit_bytes)
            .field("log_format", log_format)
            .field("driver", driver)
            .field("jobs", jobs)
            .field("simulator", simulator)
            .field("libvirt", libvirt)
            .field("rate_limit", rate_limit)
            .field("tokens", tokens)
            .field("billing", billing)
            .field("payments", payments)
            .field("regions", regions)
            .field("gpu_models", gpu_models)
            .field("capacity", capacity)
            .field("volume_types", volume_types)
            .field("volumes", volumes)
            .field("snapshots", snapshots)
            .field("os_images", os_images)
            .field("ai", ai)
            .field("deadlines", deadlines)
            .field("metrics", metrics)
            .field("webhooks", webhooks)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Which compute driver runs instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// The simulated data centre.
    Sim,
    /// Real virtual machines through libvirt (a server built with the `libvirt` feature).
    Libvirt,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub access_ttl_seconds: u64,
    pub refresh_ttl_seconds: u64,
}

/// A price in every currency.
pub type PriceTable = BTreeMap<Currency, ConfigDecimal>;

/// A decimal read exactly from TOML (a number or a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigDecimal(#[serde(with = "barrack_api::decimal")] pub Decimal);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Default for Config {
    fn default() -> Config {
        Config::from_toml(EXAMPLE_TOML, "built-in defaults")
            .expect("the example configuration is valid")
    }
}

impl Config {
    /// Parses one complete configuration document and checks it.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// The defaults, overlaid by `file` (when given), then by `BARRACK_*` variables from `env`.
    pub fn load(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut value: toml::Table =
            toml::from_str(EXAMPLE_TOML).map_err(|e| ConfigError::Parse {
                origin: "built-in defaults".into(),
                message: e.to_string(),
            })?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.into(),
                source,
            })?;
            let overlay: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                origin: path.display().to_string(),
                message: e.to_string(),
            })?;
            merge(&mut value, overlay);
        }
        let from_env = apply_env(&mut value, env, OPTIONAL_KEYS)?;
        let origin = file
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "configuration".into());
        let config: Config =
            toml::Value::Table(value)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    origin,
                    message: naming_variables(e.to_string(), &from_env),
                })?;
        config.check()?;
        // A webhook secret file that cannot be read stops the start rather than refusing every payment.
        config.payments.webhook_secret()?;
        config.configured_secret()?;
        config.token_secret()?;
        Ok(config)
    }

    /// The database URL: `database_url`, or the contents of `database_url_file`, or SQLite in the data dir.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        if let Some(path) = &self.database_url_file {
            return read_secret_file(path);
        }
        Ok(format!(
            "sqlite://{}?mode=rwc",
            self.data_dir.join("barrack.db").display()
        ))
    }

    /// The configured server secret, if any (`secret` or `secret_file`); shorter than
    /// [`MIN_SERVER_SECRET_BYTES`] is an error, whichever source it came from.
    pub fn configured_secret(&self) -> Result<Option<String>, ConfigError> {
        let secret = match (&self.secret, &self.secret_file) {
            (Some(secret), _) => secret.clone(),
            (None, Some(path)) => read_secret_file(path)?,
            (None, None) => return Ok(None),
        };
        check_server_secret("secret", &secret)?;
        Ok(Some(secret))
    }

    /// The configured token-signing secret, if any (`token_secret` or `token_secret_file`).
    pub fn token_secret(&self) -> Result<Option<String>, ConfigError> {
        let secret = match (&self.token_secret, &self.token_secret_file) {
            (Some(secret), _) => secret.clone(),
            (None, Some(path)) => read_secret_file(path)?,
            (None, None) => return Ok(None),
        };
        check_server_secret("token_secret", &secret)?;
        Ok(Some(secret))
    }

    pub fn region(&self, name: &str) -> Option<&RegionConfig> {
        self.regions.iter().find(|r| r.name == name)
    }

    pub fn gpu_model(&self, name: &str) -> Option<&GpuModelConfig> {
        self.gpu_models.iter().find(|m| m.name == name)
    }

    /// Whether the region offers the GPU model (its configured capacity names it).
    pub fn offers(&self, region: &str, gpu_model: &str) -> bool {
        self.capacity
            .iter()
            .any(|c| c.region == region && c.gpus.contains_key(gpu_model))
    }

    /// The GPU models a region offers, in configuration order.
    pub fn offered_models(&self, region: &str) -> Vec<&str> {
        self.capacity
            .iter()
            .filter(|c| c.region == region)
            .flat_map(|c| c.gpus.keys().map(String::as_str))
            .collect()
    }

    pub fn volume_type(&self, name: &str) -> Option<&VolumeTypeConfig> {
        self.volume_types.iter().find(|v| v.name == name)
    }

    /// Cross-checks references between sections.
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        match (&self.driver, &self.libvirt) {
            (DriverKind::Libvirt, None) => {
                return invalid("driver = \"libvirt\" needs a [libvirt] table".into());
            }
            (_, Some(libvirt)) => {
                libvirt.validate().map_err(ConfigError::Invalid)?;
                for host in &libvirt.hosts {
                    if self.region(&host.region).is_none() {
                        return invalid(format!(
                            "libvirt host '{}' is in unknown region '{}'",
                            host.name, host.region
                        ));
                    }
                }
            }
            (DriverKind::Sim, None) => {}
        }
        // Below this a valid request could be refused: a script or cloud-init of the largest size, each
        // of its bytes written as a JSON escape of six.
        let smallest_body = 6 * barrack_api::rules::SCRIPT_MAX_BYTES + 32 * 1024;
        if self.body_limit_bytes < smallest_body {
            return invalid(format!(
                "body_limit_bytes must be at least {smallest_body}: smaller, the API would refuse valid requests (a {} KiB script) with 413",
                barrack_api::rules::SCRIPT_MAX_BYTES / 1024
            ));
        }
        // Zero would make no connection, a token dead on arrival, or workers poll without a pause.
        if self.database_max_connections == 0 {
            return invalid("database_max_connections must be at least 1".into());
        }
        if self.tokens.access_ttl_seconds == 0 || self.tokens.refresh_ttl_seconds == 0 {
            return invalid(
                "tokens.access_ttl_seconds and tokens.refresh_ttl_seconds must be at least 1"
                    .into(),
            );
        }
        self.rate_limit.check_proxies()?;
        self.webhooks.check()?;
        let mut names = BTreeSet::new();
        for region in &self.regions {
            if !names.insert(&region.name) {
                return invalid(format!("region '{}' is listed twice", region.name));
            }
        }
        self.billing.check()?;
        self.jobs.check()?;
        let mut models = BTreeSet::new();
        for model in &self.gpu_models {
            if !models.insert(&model.name) {
                return invalid(format!("GPU model '{}' is listed twice", model.name));
            }
            if model.max_count == 0 {
                return invalid(format!(
                    "GPU model '{}': max_count must be at least 1",
                    model.name
                ));
            }
            check_prices(&format!("GPU model '{}'", model.name), &model.prices)?;
        }
        for volume_type in &self.volume_types {
            check_prices(
                &format!("volume type '{}'", volume_type.name),
                &volume_type.prices,
            )?;
        }
        for snapshot in &self.snapshots {
            check_prices(
                &format!("snapshot pricing of tier '{}'", snapshot.tier),
                &snapshot.prices,
            )?;
        }
        self.billing.check_prices()?;
        self.payments.check()?;
        for capacity in &self.capacity {
            let Some(region) = self.region(&capacity.region) else {
                return invalid(format!(
                    "capacity names unknown region '{}'",
                    capacity.region
                ));
            };
            for model in capacity.gpus.keys() {
                match self.gpu_model(model) {
                    None => {
                        return invalid(format!(
                            "capacity of {} names unknown GPU model '{model}'",
                            region.name
                        ));
                    }
                    Some(m) if m.tier != region.tier => {
                        return invalid(format!(
                            "capacity of {} ({}) names GPU model '{model}' of the {} tier",
                            region.name, region.tier, m.tier
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        for image in &self.os_images {
            for region in &image.regions {
                if self.region(region).is_none() {
                    return invalid(format!(
                        "OS image '{}' names unknown region '{region}'",
                        image.name
                    ));
                }
            }
        }
        self.rate_limit.check_window()?;
        self.ai.check()
    }
}

pub(crate) fn check_prices(what: &str, prices: &PriceTable) -> Result<(), ConfigError> {
    for currency in Currency::ALL {
        match prices.get(&currency) {
            None => {
                return Err(ConfigError::Invalid(format!(
                    "{what} has no {currency} price"
                )));
            }
            Some(p) if p.0.is_sign_negative() => {
                return Err(ConfigError::Invalid(format!(
                    "{what}: the {currency} price is negative"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Shortest server or token secret accepted: a short one makes session tokens forgeable offline.
pub const MIN_SERVER_SECRET_BYTES: usize = 32;

/// Refuses a secret shorter than [`MIN_SERVER_SECRET_BYTES`] (`what` names its key in the message).
pub fn check_server_secret(what: &str, secret: &str) -> Result<(), ConfigError> {
    if secret.len() < MIN_SERVER_SECRET_BYTES {
        return Err(ConfigError::Invalid(format!(
            "{what} must be at least {MIN_SERVER_SECRET_BYTES} bytes (it has {})",
            secret.len()
        )));
    }
    Ok(())
}

pub(crate) fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::config_env::insert_at;

    #[test]
    fn the_example_file_is_the_default_and_holds_the_documented_catalog() {
        let config = Config::default();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.regions.len(), 4);
        assert_eq!(config.gpu_models.len(), 9);
        let h100 = config.gpu_model("H100-SXM5-80GB").unwrap();
        assert_eq!(
            h100.prices[&Currency::USD].0,
            "2.49".parse::<Decimal>().unwrap()
        );
        assert_eq!(h100.vcpus_per_gpu * 4, 176);
        assert_eq!(h100.ram_gb_per_gpu * 4, 740);
        assert_eq!(config.gpu_model("RTX-A6000").unwrap().max_count, 4);
        assert_eq!(
            config.volume_type("NVMe").unwrap().prices[&Currency::EUR].0,
            "0.35".parse::<Decimal>().unwrap()
        );
        assert_eq!(config.os_images.len(), 5);
    }

    #[test]
    fn the_libvirt_driver_needs_its_table_with_known_regions() {
        let file = |text: &str| {
            let path = std::env::temp_dir().join(format!(
                "barrack-config-{}-{}.toml",
                std::process::id(),
                text.len()
            ));
            std::fs::write(&path, text).unwrap();
            let result = Config::load(Some(&path), &[]);
            let _ = std::fs::remove_file(&path);
            result
        };
        let error = file("driver = \"libvirt\"\n").unwrap_err().to_string();
        assert!(error.contains("[libvirt]"), "{error}");
        let table = |region: &str| {
            format!(
                "driver = \"libvirt\"\n[libvirt]\n[[libvirt.hosts]]\nname = \"h\"\nuri = \"qemu:///system\"\nregion = \"{region}\"\n"
            )
        };
        let error = file(&table("MARS-1")).unwrap_err().to_string();
        assert!(error.contains("unknown region 'MARS-1'"), "{error}");
        let config = file(&table("FINLAND-1")).unwrap();
        assert_eq!(config.driver, DriverKind::Libvirt);
        assert_eq!(config.libvirt.unwrap().hosts[0].name, "h");
        // The example of the libvirt table is a valid overlay of this configuration.
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/libvirt.example.toml");
        let config = Config::load(Some(&example), &[]).unwrap();
        assert_eq!(
            config.driver,
            DriverKind::Libvirt,
            "it selects the driver it configures"
        );
        assert_eq!(config.libvirt.unwrap().hosts[0].region, "FINLAND-1");
    }

    /// Every key the configuration has is written in the example, as a value or as a commented line.
    #[test]
    fn the_example_documents_every_key() {
        let mut value = toml::Value::try_from(Config::default()).unwrap();
        if let toml::Value::Table(t) = &mut value {
            for key in OPTIONAL_KEYS {
                let path: Vec<&str> = key.split('.').collect();
                insert_at(t, &path, toml::Value::String(String::new()));
            }
        }
        let mut missing = Vec::new();
        collect_keys(&value, &mut |key| {
            let written = EXAMPLE_TOML.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.starts_with(&format!("{key} ="))
                    || line.contains(&format!(" {key} ="))
                    || line.contains(&format!("[{key}]"))
                    || line.contains(&format!("[[{key}]]"))
                    || line.contains(&format!("[{key}."))
                    || line.contains(&format!(".{key}]"))
            });
            if !written {
                missing.push(key.to_string());
            }
        });
        assert!(
            missing.is_empty(),
            "keys missing from the example: {missing:?}"
        );
    }

    fn collect_keys(value: &toml::Value, f: &mut dyn FnMut(&str)) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    // Map-valued keys (prices, gpus) hold data, not configuration keys.
                    if !matches!(
                        k.as_str(),
                        "prices"
                            | "gpus"
                            | "minimum_balance"
                            | "hibernation_prices"
                            | "minimum_deposit"
                    ) {
                        f(k);
                        collect_keys(v, f);
                    } else {
                        f(k);
                    }
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|i| collect_keys(i, f)),
            _ => {}
        }
    }

    #[test]
    fn files_and_environment_override_defaults() {
        let dir = std::env::temp_dir().join(format!("barrack-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("barrack.toml");
        std::fs::write(&file, "open_signup = false\n[rate_limit]\nrequests = 5\n").unwrap();
        let env = vec![
            ("BARRACK_LISTEN".to_string(), "0.0.0.0:9000".to_string()),
            (
                "BARRACK_RATE_LIMIT_WINDOW_SECONDS".to_string(),
                "10".to_string(),
            ),
            (
                "BARRACK_DATABASE_URL".to_string(),
                "postgres://db/barrack".to_string(),
            ),
        ];
        let config = Config::load(Some(&file), &env).unwrap();
        assert!(!config.open_signup);
        assert_eq!(config.rate_limit.requests, 5);
        assert_eq!(config.rate_limit.window_seconds, 10);
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.database_url().unwrap(), "postgres://db/barrack");
        assert_eq!(
            config.regions.len(),
            4,
            "sections not in the file keep their defaults"
        );

        let bad = vec![(
            "BARRACK_RATE_LIMIT_REQUESTS".to_string(),
            "many".to_string(),
        )];
        let err = Config::load(None, &bad).unwrap_err().to_string();
        assert!(err.contains("BARRACK_RATE_LIMIT_REQUESTS"), "{err}");
        // A value of the right type the configuration then refuses names its variable too.
        let unknown = vec![("BARRACK_LOG_FORMAT".to_string(), "xml".to_string())];
        let err = Config::load(None, &unknown).unwrap_err().to_string();
        assert!(
            err.contains("`xml`") && err.contains("(set by BARRACK_LOG_FORMAT)"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_short_server_or_token_secret_is_refused_from_every_source() {
        let env = |name: &str, value: &str| vec![(name.to_string(), value.to_string())];
        for name in ["BARRACK_SECRET", "BARRACK_TOKEN_SECRET"] {
            for value in ["", "x", &"y".repeat(MIN_SERVER_SECRET_BYTES - 1)] {
                let err = Config::load(None, &env(name, value))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains("at least 32 bytes"), "{name}={value:?}: {err}");
            }
            let long = "z".repeat(MIN_SERVER_SECRET_BYTES);
            assert!(Config::load(None, &env(name, &long)).is_ok(), "{name}");
        }
        let dir = std::env::temp_dir().join(format!("barrack-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "  short secret in a file  \n").unwrap();
        for name in ["BARRACK_SECRET_FILE", "BARRACK_TOKEN_SECRET_FILE"] {
            let path = file.display().to_string();
            assert!(Config::load(None, &env(name, &path)).is_err(), "{name}");
        }
        // A configuration built in code is checked where the secret is read.
        let config = Config {
            secret: Some(String::new()),
            ..Config::default()
        };
        assert!(config.configured_secret().is_err());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let mut config = Config {
            secret: Some("server-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaa".into()),
            token_secret: Some("token-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into()),
            database_url: Some(
                "postgres://barrack:db-password-ccc@db.internal:5432/barrack".into(),
            ),
            ..Default::default()
        };
        config.payments.webhook_secret = Some("whsec-dddddddddddddddddddddddddd".into());
        config.metrics.bearer_token = Some("scrape-token-fff".into());
        let mut model = config.ai.models[0].clone();
        model.base_url = Some("https://user:upstream-key-eee@llm.internal/v1".into());
        config.ai.models.push(model);
        let printed = format!("{config:?}");
        for secret in [
            "server-secret-aaa",
            "token-secret-bbb",
            "db-password-ccc",
            "whsec-ddd",
            "upstream-key-eee",
            "scrape-token-fff",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        // The rest is still there to debug with.
        assert!(printed.contains("db.internal:5432/barrack"));
        assert!(printed.contains("llm.internal/v1"));
        assert!(printed.contains(&config.listen));
        let pretty = format!("{config:#?}");
        assert!(!pretty.contains("db-password-ccc"));
    }

    #[test]
    fn payments_defaults_and_the_webhook_secret_from_the_environment() {
        let config = Config::default();
        assert_eq!(config.payments.provider, PaymentProviderKind::Manual);
        assert_eq!(config.payments.webhook_secret().unwrap(), None);
        assert_eq!(
            config.payments.minimum_deposit[&Currency::INR].0,
            Decimal::from(100)
        );
        assert_eq!(config.payments.gst_percent_inr.0, Decimal::from(18));

        let env = vec![(
            "BARRACK_PAYMENTS_WEBHOOK_SECRET".to_string(),
            "whsec-from-the-environment".to_string(),
        )];
        let config = Config::load(None, &env).unwrap();
        assert_eq!(
            config.payments.webhook_secret().unwrap().as_deref(),
            Some("whsec-from-the-environment")
        );
        assert!(!format!("{config:?}").contains("whsec-from-the-environment"));

        let short = vec![(
            "BARRACK_PAYMENTS_WEBHOOK_SECRET".to_string(),
            "short".to_string(),
        )];
        assert!(Config::load(None, &short).is_err());

        let dir = std::env::temp_dir().join(format!("barrack-webhook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("webhook-secret");
        std::fs::write(&file, "whsec-from-a-file-0123\n").unwrap();
        let env = vec![(
            "BARRACK_PAYMENTS_WEBHOOK_SECRET_FILE".to_string(),
            file.display().to_string(),
        )];
        let config = Config::load(None, &env).unwrap();
        assert_eq!(
            config.payments.webhook_secret().unwrap().as_deref(),
            Some("whsec-from-a-file-0123")
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn inconsistent_catalogs_are_refused() {
        let text = EXAMPLE_TOML.replace("region = \"FINLAND-3\"", "region = \"MARS-1\"");
        let err = Config::from_toml(&text, "test").unwrap_err().to_string();
        assert!(err.contains("MARS-1"), "{err}");
        let unknown = format!("{EXAMPLE_TOML}\n[surprise]\nx = 1\n");
        assert!(Config::from_toml(&unknown, "test").is_err());
    }

    #[test]
    fn lists_of_strings_are_set_from_the_environment_comma_separated_and_checked() {
        let env = |name: &str, value: &str| vec![(name.to_string(), value.to_string())];
        let config = Config::load(
            None,
            &env("BARRACK_WEBHOOKS_ALLOWED_TARGETS", "127.0.0.1, 10.0.0.0/8"),
        )
        .unwrap();
        assert_eq!(config.webhooks.allowed_targets, ["127.0.0.1", "10.0.0.0/8"]);
        for (name, value) in [
            ("BARRACK_WEBHOOKS_ALLOWED_TARGETS", "notacidr"),
            ("BARRACK_RATE_LIMIT_TRUSTED_PROXIES", "1.2.3.4/99"),
        ] {
            let err = Config::load(None, &env(name, value))
                .unwrap_err()
                .to_string();
            assert!(err.contains(value.trim_end_matches("/99")), "{name}: {err}");
        }
    }

    #[test]
    fn a_body_limit_that_would_refuse_valid_requests_is_refused() {
        for limit in ["0", "4096", "131071"] {
            let text = EXAMPLE_TOML.replace(
                "body_limit_bytes = 1048576",
                &format!("body_limit_bytes = {limit}"),
            );
            let err = Config::from_toml(&text, "test").unwrap_err().to_string();
            assert!(
                err.contains("body_limit_bytes must be at least 131072"),
                "{err}"
            );
        }
        let text = EXAMPLE_TOML.replace("body_limit_bytes = 1048576", "body_limit_bytes = 131072");
        assert!(Config::from_toml(&text, "test").is_ok());
    }

    /// A zero that would leave no database connection, tokens dead on arrival or workers polling
    /// without a pause is refused, naming the setting.
    #[test]
    fn zeros_that_break_the_server_are_refused() {
        for (line, named) in [
            ("database_max_connections = 16", "database_max_connections"),
            ("access_ttl_seconds = 900", "tokens.access_ttl_seconds"),
            (
                "refresh_ttl_seconds = 2592000",
                "tokens.refresh_ttl_seconds",
            ),
            ("poll_interval_ms = 500", "jobs.poll_interval_ms"),
            ("observe_interval_ms = 1000", "jobs.observe_interval_ms"),
        ] {
            let key = line.split(" = ").next().unwrap();
            let text = EXAMPLE_TOML.replace(line, &format!("{key} = 0"));
            assert_ne!(text, EXAMPLE_TOML, "{line}");
            let err = Config::from_toml(&text, "test").unwrap_err().to_string();
            assert!(
                err.contains(named) && err.contains("at least 1"),
                "{line}: {err}"
            );
        }
    }
}
