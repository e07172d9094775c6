//! Profiles: where the API is and which key to use, kept in a private TOML file and overridable from the
//! environment so scripts and CI need no file at all.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_PROFILE: &str = "default";

/// `BARRACK_CLI_CONFIG`, else `$XDG_CONFIG_HOME/barrack/config.toml`, else `~/.config/barrack/config.toml`.
pub fn config_path(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(path) = var("BARRACK_CLI_CONFIG") {
        return Some(PathBuf::from(path));
    }
    // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
    let base = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("barrack").join("config.toml"))
}

/// The process environment, as [`config_path`] and [`Settings::resolve`] read it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

const FILE_HEADER: &str = "# Barrack CLI profiles, written by `barrack configure`.\n# Keep this file private: it holds API keys.\n\n";

impl ConfigFile {
    /// Reads the file; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<ConfigFile, CliError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| CliError::Other(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(e) => Err(CliError::Other(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes the file readable by the owner only, replacing it atomically so a crash never leaves half a
    /// file or a moment where the keys are readable by others.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let fail = |e: std::io::Error| CliError::Other(format!("{}: {e}", path.display()));
        let text = toml::to_string_pretty(self).map_err(|e| CliError::Other(e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(fail)?;
        }
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut file = open_private(&tmp).map_err(fail)?;
        file.write_all(FILE_HEADER.as_bytes()).map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only when the file is created; a leftover temporary file keeps its own.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// Where the API key in use came from, to tell the user what to fix when it is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    None,
    Env,
    Profile { name: String, path: PathBuf },
}

/// The server's address as the client wants it: with a scheme, without a trailing `/` or the `/api/`
/// the server prints after it (`http://127.0.0.1:8080/api/` means `http://127.0.0.1:8080`).
pub fn api_url(text: &str) -> Result<String, String> {
    let url = text.trim();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        // The same text with a scheme, when it could be a host name; a generic example otherwise.
        let example = if url.contains("://") || url.is_empty() || url.contains(char::is_whitespace)
        {
            "http://127.0.0.1:8080".to_string()
        } else {
            format!("http://{url}")
        };
        return Err(format!(
            "'{url}' is not an http:// or https:// URL (for example {example})"
        ));
    }
    let mut url = url.trim_end_matches('/');
    if let Some(base) = url.strip_suffix("/api") {
        url = base.trim_end_matches('/');
    }
    if url.split("://").nth(1).is_none_or(str::is_empty) {
        return Err(format!("'{}' names no server", text.trim()));
    }
    Ok(url.to_string())
}

/// The connection settings a command runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub api_url: String,
    pub api_key: Option<String>,
    pub key_source: KeySource,
}

impl Settings {
    /// `BARRACK_API_URL` / `BARRACK_API_KEY`, over the profile (`--profile`, default `default`), over the
    /// default URL. A profile named explicitly must exist.
    pub fn resolve(
        profile: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, CliError> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let path = config_path(&env);
        let file = match &path {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let name = profile.unwrap_or(DEFAULT_PROFILE);
        let stored = match (file.profiles.get(name), profile) {
            (Some(stored), _) => stored.clone(),
            (None, None) => Profile::default(),
            (None, Some(_)) => {
                let place = path
                    .as_ref()
                    .map(|p| format!(" in {}", p.display()))
                    .unwrap_or_default();
                return Err(CliError::Usage(format!(
                    "no profile '{name}'{place}: create it with `barrack configure --profile {name}`"
                )));
            }
        };
        let (api_key, key_source) = match (var("BARRACK_API_KEY"), stored.api_key) {
            (Some(key), _) => (Some(key), KeySource::Env),
            (None, Some(key)) => (
                Some(key),
                KeySource::Profile {
                    name: name.to_string(),
                    path: path.unwrap_or_default(),
                },
            ),
            (None, None) => (None, KeySource::None),
        };
        let api_url = match (var("BARRACK_API_URL"), stored.api_url) {
            (Some(url), _) => {
                api_url(&url).map_err(|e| CliError::Usage(format!("BARRACK_API_URL: {e}")))?
            }
            (None, Some(url)) => api_url(&url)
                .map_err(|e| CliError::Usage(format!("the API URL of profile '{name}': {e}")))?,
            (None, None) => DEFAULT_API_URL.to_string(),
        };
        Ok(Settings {
            api_url,
            api_key,
            key_source,
        })
    }

    /// What to do when the API refuses the request for want of a valid key.
    pub fn auth_hint(&self) -> String {
        match &self.key_source {
            KeySource::None => {
                "no API key is configured: run `barrack configure` or set BARRACK_API_KEY".into()
            }
            KeySource::Env => "the key comes from BARRACK_API_KEY".into(),
            KeySource::Profile { name, path } => format!(
                "the key comes from profile '{name}' in {}: run `barrack configure{}` to change it",
                path.display(),
                if name == DEFAULT_PROFILE {
                    String::new()
                } else {
                    format!(" --profile {name}")
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("barrack-cli-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn config_path_follows_the_documented_order() {
        assert_eq!(
            config_path(env(&[
                ("BARRACK_CLI_CONFIG", "/x/c.toml"),
                ("XDG_CONFIG_HOME", "/xdg"),
                ("HOME", "/home/u")
            ])),
            Some(PathBuf::from("/x/c.toml"))
        );
        assert_eq!(
            config_path(env(&[("XDG_CONFIG_HOME", "/xdg"), ("HOME", "/home/u")])),
            Some(PathBuf::from("/xdg/barrack/config.toml"))
        );
        assert_eq!(
            config_path(env(&[("XDG_CONFIG_HOME", "relative"), ("HOME", "/home/u")])),
            Some(PathBuf::from("/home/u/.config/barrack/config.toml"))
        );
        assert_eq!(config_path(env(&[("BARRACK_CLI_CONFIG", "")])), None);
    }

    #[test]
    fn api_urls_take_the_form_the_server_prints() {
        for (given, meant) in [
            ("http://127.0.0.1:8080/api/", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            (
                " https://barrack.example.com/prefix/api/ ",
                "https://barrack.example.com/prefix",
            ),
            ("HTTP://host:1", "HTTP://host:1"),
        ] {
            assert_eq!(api_url(given).unwrap(), meant, "{given}");
        }
        let error = api_url("127.0.0.1:8080").unwrap_err();
        assert!(error.contains("http://127.0.0.1:8080"), "{error}");
        assert!(api_url("ftp://host").is_err());
        assert!(api_url("http:///api/").is_err());
    }

    #[test]
    fn environment_overrides_the_profile() {
        let dir = temp_dir("resolve");
        let path = dir.join("config.toml");
        let mut file = ConfigFile::default();
        file.profiles.insert(
            "default".into(),
            Profile {
                api_url: Some("http://file:1".into()),
                api_key: Some("sk_file".into()),
            },
        );
        file.profiles.insert(
            "staging".into(),
            Profile {
                api_url: Some("http://staging:1".into()),
                api_key: None,
            },
        );
        file.save(&path).unwrap();
        let config = path.to_str().unwrap();

        let from_file = Settings::resolve(None, env(&[("BARRACK_CLI_CONFIG", config)])).unwrap();
        assert_eq!(from_file.api_url, "http://file:1");
        assert_eq!(from_file.api_key.as_deref(), Some("sk_file"));

        let overridden = Settings::resolve(
            None,
            env(&[
                ("BARRACK_CLI_CONFIG", config),
                ("BARRACK_API_KEY", "sk_env"),
                ("BARRACK_API_URL", "http://env:1"),
            ]),
        )
        .unwrap();
        assert_eq!(overridden.api_url, "http://env:1");
        assert_eq!(overridden.api_key.as_deref(), Some("sk_env"));
        assert_eq!(overridden.key_source, KeySource::Env);

        let staging =
            Settings::resolve(Some("staging"), env(&[("BARRACK_CLI_CONFIG", config)])).unwrap();
        assert_eq!(staging.api_url, "http://staging:1");
        assert_eq!(staging.api_key, None);

        let missing = Settings::resolve(Some("prod"), env(&[("BARRACK_CLI_CONFIG", config)]));
        assert!(matches!(missing, Err(CliError::Usage(m)) if m.contains("prod")));

        let nothing = Settings::resolve(None, env(&[])).unwrap();
        assert_eq!(nothing.api_url, DEFAULT_API_URL);
        assert_eq!(nothing.key_source, KeySource::None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn saved_file_is_private_even_over_a_readable_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("save");
        let path = dir.join("nested").join("config.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        ConfigFile::default().save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(ConfigFile::load(&path).unwrap(), ConfigFile::default());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
