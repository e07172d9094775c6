//! A short-lived cache of API-key lookups (the key and its account), which every request would otherwise
//! spend a query on: a round trip on PostgreSQL, on SQLite a read transaction (its locks, and the pages a
//! write since the last read made stale), about a tenth of what the gateway adds to an AI call. Whatever
//! changes a key or an account ([`crate::Store::auth_changed`]) forgets the account's entries here at
//! once, and tells every other server on the database:
//!
//! - On PostgreSQL through `NOTIFY barrack_auth`; each replica listens on its own connection. Entries are
//!   only trusted while the listener is connected: when it loses its connection the cache is emptied and
//!   stays off until it listens again, since notifications may have been missed.
//! - On SQLite, where every server on the file runs on the same machine, through a file beside the
//!   database (`-auth`) that each change makes one byte longer. An entry is trusted only while that file
//!   is as long as it was when the entry was read from the database (one `fstat` a lookup), so a change
//!   made by any process is seen at its next request. A server that cannot open the file does not cache.
//!
//! A lookup that read the database before an invalidation never stores its (possibly stale) answer after
//! it: every invalidation in this process moves `epoch` on, and answers are stored only under the epoch
//! (and, on SQLite, the length of the file) they were read in.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use crate::accounts::AccountRow;
use crate::api_keys::ApiKeyRow;

/// The channel replicas tell each other about changed keys and accounts on; the payload is an account id.
pub(crate) const CHANNEL: &str = "barrack_auth";
/// The channel a server that moved the simulation clock announces the new offset on (ms, as text).
pub(crate) const CLOCK_CHANNEL: &str = "barrack_clock";
/// The payload that forgets every account (no account id is `*`).
pub(crate) const EVERY_ACCOUNT: &str = "*";

/// How long an entry is used without asking the database: the bound on staleness should a notification
/// be lost without the connection dropping.
const TTL: Duration = Duration::from_secs(5);

/// Past this many entries the cache is emptied rather than grown (a burst of distinct keys).
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<String, Entry>>,
    epoch: AtomicU64,
    listening: AtomicBool,
    /// SQLite's file of changes (opened to append), when the database is a file.
    changes: Option<std::fs::File>,
}

struct Entry {
    at: Instant,
    /// The length of the file of changes when the entry was read.
    changes: u64,
    key: ApiKeyRow,
    account: AccountRow,
}

/// When a lookup read the database: the epoch and the length of the file of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    epoch: u64,
    changes: u64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("listening", &self.listening.load(Ordering::Relaxed))
            .finish()
    }
}

impl KeyCache {
    /// SQLite's cache: `database` is the database's file (none in memory, where no other process can
    /// write). `None`, no cache, when the file of changes beside it cannot be opened.
    pub(crate) fn sqlite(database: Option<&Path>) -> Option<KeyCache> {
        let changes = match database {
            None => None,
            Some(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push("-auth");
                let mut options = std::fs::OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(&name) {
                    Ok(file) => Some(file),
                    Err(e) => {
                        tracing::warn!(error = %e, "API-key cache off: cannot open {}", Path::new(&name).display());
                        return None;
                    }
                }
            }
        };
        Some(KeyCache {
            listening: AtomicBool::new(true),
            changes,
            ..KeyCache::default()
        })
    }

    /// The length of the file of changes (0 without one); `None` when it cannot be read.
    fn changes(&self) -> Option<u64> {
        match &self.changes {
            None => Some(0),
            Some(file) => file.metadata().ok().map(|m| m.len()),
        }
    }

    /// The key of this secret hash and its account, if cached and fresh.
    pub(crate) fn get(&self, secret_hash: &str) -> Option<(ApiKeyRow, AccountRow)> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let changes = self.changes()?;
        let entries = self.entries.lock().expect("key cache");
        let entry = entries.get(secret_hash)?;
        (entry.at.elapsed() < TTL && entry.changes == changes)
            .then(|| (entry.key.clone(), entry.account.clone()))
    }

    /// What to read the database under (pass it to [`KeyCache::put`]); `None` when nothing read now may
    /// be cached.
    pub(crate) fn stamp(&self) -> Option<Stamp> {
        let epoch = self.epoch.load(Ordering::Acquire);
        Some(Stamp {
            epoch,
            changes: self.changes()?,
        })
    }

    /// Stores what was read under `stamp`, unless something was invalidated since.
    pub(crate) fn put(
        &self,
        secret_hash: &str,
        key: &ApiKeyRow,
        account: &AccountRow,
        stamp: Stamp,
    ) {
        if !self.listening.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.entries.lock().expect("key cache");
        // Checked under the lock invalidations take, so none can slip between the check and the insert.
        // A change another process made since the stamp is caught by `get`, which compares lengths.
        if self.epoch.load(Ordering::Acquire) != stamp.epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            secret_hash.to_string(),
            Entry {
                at: Instant::now(),
                changes: stamp.changes,
                key: key.clone(),
                account: account.clone(),
            },
        );
    }

    /// Tells the other processes on a SQLite file that a key or an account changed (after it committed).
    pub(crate) fn announce(&self) -> std::io::Result<()> {
        match &self.changes {
            // Appended whole, in one write: every process sees the file one byte longer.
            Some(file) => (&*file).write_all(b"."),
            None => Ok(()),
        }
    }

    /// Forgets the keys of `account`, an account id or [`EVERY_ACCOUNT`].
    pub(crate) fn forget(&self, account: &str) {
        if account == EVERY_ACCOUNT {
            self.forget_all()
        } else {
            self.forget_account(account)
        }
    }

    /// Forgets the account's keys.
    fn forget_account(&self, account_id: &str) {
        let mut entries = self.entries.lock().expect("key cache");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, e| e.key.account_id != account_id);
    }

    /// Forgets every account's keys.
    fn forget_all(&self) {
        let mut entries = self.entries.lock().expect("key cache");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Forgets everything and turns the cache on or off.
    fn reset(&self, listening: bool) {
        let mut entries = self.entries.lock().expect("key cache");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.listening.store(listening, Ordering::Release);
    }
}

/// Listens for invalidations from every replica (this one included) on a connection of its own (not
/// one of the pool's, which it would hold for good), until the returned guard is dropped; and, on the
/// same connection, for moves of the simulation clock, passed on to `clock`.
pub(crate) fn spawn_listener(
    url: String,
    pool: sqlx::PgPool,
    cache: Weak<KeyCache>,
    clock: Weak<tokio::sync::watch::Sender<i64>>,
) -> ListenerGuard {
    let task = tokio::spawn(async move {
        loop {
            let listener = async {
                let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
                listener.listen_all([CHANNEL, CLOCK_CHANNEL]).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = match listener.await {
                Ok(listener) => listener,
                Err(e) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "API-key cache off: cannot listen for revocations");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            match cache.upgrade() {
                Some(cache) => cache.reset(true),
                None => return,
            }
            loop {
                // Closing the pool (the store's `close`) ends the wait with an error.
                let next = listener.try_recv().await;
                let Some(cache) = cache.upgrade() else {
                    return;
                };
                match next {
                    Ok(Some(notification)) if notification.channel() == CLOCK_CHANNEL => {
                        if let (Some(clock), Ok(offset)) =
                            (clock.upgrade(), notification.payload().parse::<i64>())
                        {
                            clock.send_if_modified(|seen| {
                                let moved = offset > *seen;
                                *seen = (*seen).max(offset);
                                moved
                            });
                        }
                    }
                    Ok(Some(notification)) => cache.forget(notification.payload()),
                    // Lost and connected again: whatever was sent meanwhile is unknown.
                    Ok(None) => cache.reset(true),
                    Err(e) => {
                        cache.reset(false);
                        if pool.is_closed() {
                            return;
                        }
                        tracing::warn!(error = %e, "API-key cache off: the listener failed");
                        break;
                    }
                }
            }
        }
    });
    ListenerGuard(task.abort_handle())
}

/// Stops the listener when the store (its last clone) goes or is closed.
pub(crate) struct ListenerGuard(tokio::task::AbortHandle);

impl ListenerGuard {
    pub(crate) fn stop(&self) {
        self.0.abort();
    }
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for ListenerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerGuard")
    }
}
