//! API keys: made (by the account, or by an operator for it), listed and revoked. A key's secret is
//! shown once, in the answer that makes it; the database keeps its hash.

use barrack_api::Tier;
use barrack_api::account::{ApiKey, CreatedApiKey};
use barrack_store::accounts::AccountRow;
use barrack_store::api_keys::{self, ApiKeyRow};

use super::account::MAX_API_KEYS;
use crate::accounts::{AccountService, auth};
use crate::platform::clock::format_ms;
use crate::platform::ids::{IdDraws, IdKind, name_taken_as_conflict, new_id};
use crate::platform::validate::{Validator, check_label};
use crate::{Error, Result};

impl AccountService {
    /// `POST /api/admin/users/{id}/api-keys/`: a key for the account named by id or email (operators; the
    /// caller checks the role). A disabled account gets none (409): its keys were revoked with it and
    /// stay so when it is enabled again, so a key made meanwhile would come back to life then.
    pub async fn create_api_key_for(
        &self,
        account: &str,
        name: &str,
        tier: Tier,
    ) -> Result<(AccountRow, CreatedApiKey)> {
        let account = self.account_by_id_or_email(account).await?;
        let key = self.create_api_key(&account.id, name, tier).await?;
        Ok((account, key))
    }

    /// `POST /api/api-keys/`: the secret is in the answer and nowhere else.
    pub async fn create_api_key(
        &self,
        account_id: &str,
        name: &str,
        tier: Tier,
    ) -> Result<CreatedApiKey> {
        let mut v = Validator::new();
        check_label(&mut v, "name", name);
        v.finish()?;
        let name = name.trim();
        // Counted and added under the account's lock: concurrent creations cannot pass the limit together,
        // and a disable committed first is seen. A disabled account gets no key, however asked (the API,
        // `barrackd admin`): its keys were revoked with it and stay so when it is enabled again, so a key
        // made meanwhile would come back to life then.
        let mut tx = self.context.store.begin().await?;
        barrack_store::firewalls::lock_account(&mut tx, account_id).await?;
        match barrack_store::accounts::is_disabled(&mut tx, account_id).await? {
            None => return Err(Error::not_found("Account", account_id)),
            Some(true) => {
                return Err(Error::conflict(
                    "INVALID_STATE",
                    format!("Account {account_id} is disabled: enable it before giving it keys"),
                ));
            }
            Some(false) => {}
        }
        let live = api_keys::live_for_account(&mut tx, account_id).await?;
        if live.iter().any(|k| k.name == name) {
            return Err(Error::conflict(
                "DUPLICATE_NAME",
                format!("An API key named '{name}' already exists"),
            ));
        }
        if live.len() >= MAX_API_KEYS {
            return Err(Error::conflict(
                "LIMIT_EXCEEDED",
                format!("An account may hold at most {MAX_API_KEYS} API keys"),
            ));
        }
        let secret = auth::generate_api_key();
        let mut row = ApiKeyRow {
            id: new_id(IdKind::ApiKey),
            account_id: account_id.to_string(),
            name: name.to_string(),
            tier: tier.as_str().to_string(),
            prefix: auth::api_key_prefix(&secret),
            secret_hash: self.context.secrets.hash_api_key(&secret),
            created_at: self.now(),
            last_used_at: None,
            revoked_at: None,
        };
        let mut draws = IdDraws::of("API key");
        while !name_taken_as_conflict(api_keys::insert(&mut tx, &row).await, "An API key", name)? {
            draws.taken()?;
            row.id = new_id(IdKind::ApiKey);
        }
        tx.commit().await?;
        Ok(CreatedApiKey {
            id: row.id,
            name: row.name,
            tier,
            prefix: row.prefix,
            key: secret,
            created_at: format_ms(row.created_at),
        })
    }

    pub async fn list_api_keys(&self, account_id: &str) -> Result<Vec<ApiKey>> {
        let keys = self.context.store.live_api_keys(account_id).await?;
        Ok(keys
            .into_iter()
            .map(|k| ApiKey {
                tier: Tier::parse(&k.tier).unwrap_or(Tier::Legacy),
                id: k.id,
                name: k.name,
                prefix: k.prefix,
                created_at: format_ms(k.created_at),
                last_used_at: k.last_used_at.map(format_ms),
            })
            .collect())
    }

    /// `DELETE /api/api-keys/{id}/`: revokes at once.
    pub async fn revoke_api_key(&self, account_id: &str, key_id: &str) -> Result<()> {
        if self
            .context
            .store
            .revoke_api_key(account_id, key_id, self.now())
            .await?
        {
            Ok(())
        } else {
            Err(Error::not_found("API key", key_id))
        }
    }
}
