//! Who is calling: accounts and their profiles, sign-up and log-in, tokens and API keys (`auth`), and what
//! an account keeps for its machines: SSH keys and startup scripts. Uses `platform`.

mod account;
pub mod auth;
pub mod heavy;
pub mod login_throttle;
pub mod scripts;
pub mod ssh_key;
pub mod ssh_keys;

pub use account::*;
