//! Who is calling: accounts and their profiles, sign-up and log-in, tokens and API keys (`auth`), dashboard
//! sessions (`web_sessions`), and what an account keeps for its machines: SSH keys and startup scripts.
//! Uses `platform`.

mod account;
mod api_keys;
pub mod auth;
pub mod event_stream;
pub mod heavy;
pub mod login_throttle;
pub mod scripts;
pub mod ssh_key;
pub mod ssh_keys;
pub mod web_sessions;
pub mod webhooks;

pub use account::*;
