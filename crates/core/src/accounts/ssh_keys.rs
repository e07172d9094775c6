//! SSH keys of an account: import (parsed and fingerprinted), generate, list, delete.

use std::sync::Arc;

use barrack_api::ssh_keys::{CreateSshKeyRequest, CreatedSshKey, SshKey};
use barrack_store::ssh_keys::{self, SshKeyRow};

use crate::accounts::Caller;
use crate::accounts::heavy;
use crate::accounts::ssh_key::parse_public_key;
use crate::platform::clock::format_ms;
use crate::platform::ids::{IdDraws, IdKind, name_taken_as_conflict, new_id};
use crate::platform::validate::{Validator, length_between, only_chars};
use crate::{Context, Error, Result};
use barrack_api::rules;

/// Keys one account may hold.
pub const MAX_SSH_KEYS: u64 = 25;

#[derive(Clone)]
pub struct SshKeyService {
    context: Arc<Context>,
}

impl SshKeyService {
    pub fn new(context: Arc<Context>) -> SshKeyService {
        SshKeyService { context }
    }

    pub async fn create(
        &self,
        caller: &Caller,
        request: CreateSshKeyRequest,
    ) -> Result<CreatedSshKey> {
        let name = request.name.clone();
        let mut v = Validator::new();
        v.check(
            length_between(&name, 1, rules::LABEL_MAX_CHARS),
            "name",
            format!(
                "Name must be between 1 and {} characters",
                rules::LABEL_MAX_CHARS
            ),
        );
        v.check(
            only_chars(&name, rules::SSH_KEY_NAME_EXTRA_CHARS),
            "name",
            "Name must contain only letters, digits, hyphens, underscores, and dots",
        );
        let parsed = match request.public_key.as_deref() {
            Some(text) => match parse_public_key(text) {
                Ok(info) => Some(info),
                Err(message) => {
                    v.add("public_key", message);
                    None
                }
            },
            None => None,
        };
        v.finish()?;
        let store = &self.context.store;
        if store
            .ssh_key(caller.account_id(), &name)
            .await?
            .is_some_and(|k| k.name == name)
        {
            return Err(Error::conflict(
                "DUPLICATE_NAME",
                format!("An SSH key named '{name}' already exists"),
            ));
        }
        if store.count_ssh_keys(caller.account_id()).await? >= MAX_SSH_KEYS {
            return Err(Error::conflict(
                "LIMIT_EXCEEDED",
                format!("An account may hold at most {MAX_SSH_KEYS} SSH keys"),
            ));
        }
        let (public_key, fingerprint, algorithm, bits, private_key) = match parsed {
            Some(info) => (
                info.normalized,
                info.fingerprint,
                info.algorithm,
                info.bits,
                None,
            ),
            None => {
                let pair = heavy::generate_rsa_key_pair(&name).await?;
                let info = parse_public_key(&pair.public_key).map_err(Error::internal)?;
                (
                    info.normalized,
                    pair.fingerprint,
                    info.algorithm,
                    info.bits,
                    Some(pair.private_key),
                )
            }
        };
        let mut row = SshKeyRow {
            id: new_id(IdKind::SshKey),
            account_id: caller.account_id().to_string(),
            name,
            public_key,
            fingerprint,
            algorithm,
            bits: i64::from(bits),
            created_at: self.context.clock.now_ms(),
        };
        // Counted again and added under the account's lock (the check above only spares a key generation):
        // concurrent creations cannot pass the limit together.
        let mut tx = store.begin().await?;
        barrack_store::firewalls::lock_account(&mut tx, caller.account_id()).await?;
        if ssh_keys::count_for_account(&mut tx, caller.account_id()).await? >= MAX_SSH_KEYS {
            return Err(Error::conflict(
                "LIMIT_EXCEEDED",
                format!("An account may hold at most {MAX_SSH_KEYS} SSH keys"),
            ));
        }
        // A key is listed once, so that its fingerprint names one entry (and one name to deploy with).
        if let Some(existing) =
            ssh_keys::name_with_fingerprint(&mut tx, caller.account_id(), &row.fingerprint).await?
        {
            return Err(Error::conflict(
                "CONFLICT",
                format!("This public key is already saved as SSH key '{existing}'"),
            ));
        }
        let mut draws = IdDraws::of("SSH key");
        while !name_taken_as_conflict(
            ssh_keys::insert(&mut tx, &row).await,
            "An SSH key",
            &row.name,
        )? {
            draws.taken()?;
            row.id = new_id(IdKind::SshKey);
        }
        tx.commit().await?;
        Ok(CreatedSshKey {
            key: view(row),
            private_key,
        })
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<SshKey>> {
        Ok(self
            .context
            .store
            .ssh_keys(caller.account_id())
            .await?
            .into_iter()
            .map(view)
            .collect())
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<SshKey> {
        self.context
            .store
            .ssh_key(caller.account_id(), id)
            .await?
            .filter(|k| k.id == id)
            .map(view)
            .ok_or_else(|| Error::not_found("SSH key", id))
    }

    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<()> {
        match self
            .context
            .store
            .delete_ssh_key(caller.account_id(), id)
            .await?
        {
            Some(true) => Ok(()),
            Some(false) => Err(Error::conflict(
                "RESOURCE_IN_USE",
                format!("SSH key '{id}' is used by a live instance"),
            )),
            None => Err(Error::not_found("SSH key", id)),
        }
    }
}

fn view(row: SshKeyRow) -> SshKey {
    SshKey {
        id: row.id,
        name: row.name,
        public_key: row.public_key,
        fingerprint: row.fingerprint,
        algorithm: row.algorithm,
        bits: row.bits as u32,
        created_at: format_ms(row.created_at),
    }
}
