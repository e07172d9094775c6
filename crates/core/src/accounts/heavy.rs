//! CPU-heavy work (Argon2 password hashing, RSA key generation) runs on the blocking pool, at most one
//! job per core at a time: done inline it would stall the async workers and every other request with them
//! (a burst of log-ins held health checks for seconds).

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use crate::accounts::auth;
use crate::accounts::ssh_key::{self, GeneratedKeyPair};
use crate::{Error, Result};

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS
        .get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())))
}

/// Runs `work` on the blocking pool once a core is free for it.
async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _permit = permits()
        .acquire()
        .await
        .map_err(|e| Error::internal(format!("CPU permits closed: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("CPU-heavy task failed: {e}")))
}

pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_string();
    run(move || auth::hash_password(&password))
        .await?
        .map_err(Error::internal)
}

pub async fn verify_password(password: &str, hash: &str) -> Result<bool> {
    let (password, hash) = (password.to_string(), hash.to_string());
    run(move || auth::verify_password(&password, &hash)).await
}

pub async fn generate_rsa_key_pair(comment: &str) -> Result<GeneratedKeyPair> {
    let comment = comment.to_string();
    run(move || ssh_key::generate_rsa_key_pair(&comment))
        .await?
        .map_err(Error::internal)
}
