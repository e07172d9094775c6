//! Startup scripts: stored per account, copied into an instance at deploy (so deleting or editing a
//! script never changes an instance that used it).

use std::sync::Arc;

use barrack_api::PageQuery;
use barrack_api::Pagination;
use barrack_api::scripts::{DeletedScripts, Script, ScriptList, ScriptRequest};
use barrack_store::StoreError;
use barrack_store::scripts::{self, ScriptRow};

use crate::accounts::Caller;
use crate::platform::clock::format_ms;
use crate::platform::idempotency;
use crate::platform::ids::{IdDraws, IdKind, new_id};
use crate::platform::validate::{Validator, check_label_of};
use crate::{Context, Error, Result};
use barrack_api::rules;

/// Largest script, in bytes.
pub const MAX_SCRIPT_BYTES: usize = rules::SCRIPT_MAX_BYTES;
/// Startup scripts one account may hold.
pub const MAX_SCRIPTS: u64 = 100;
/// Most ids one bulk delete takes.
const MAX_BULK: usize = rules::MAX_IDS_PER_BULK;

#[derive(Clone)]
pub struct ScriptService {
    context: Arc<Context>,
}

impl ScriptService {
    pub fn new(context: Arc<Context>) -> ScriptService {
        ScriptService { context }
    }

    /// The documented rules and messages.
    fn validate(request: &ScriptRequest) -> Result<()> {
        let mut v = Validator::new();
        check_label_of(&mut v, "name", &request.name, rules::SCRIPT_NAME_MAX_CHARS);
        v.check(
            !request.script.trim().is_empty(),
            "script",
            "Script content is required",
        );
        v.check(
            request.script.len() <= MAX_SCRIPT_BYTES,
            "script",
            format!("Script content must be {MAX_SCRIPT_BYTES} bytes or less"),
        );
        v.finish()
    }

    pub async fn create(&self, caller: &Caller, request: ScriptRequest) -> Result<Script> {
        Self::validate(&request)?;
        let now = self.context.clock.now_ms();
        let mut row = ScriptRow {
            id: new_id(IdKind::Script),
            account_id: caller.account_id().to_string(),
            name: request.name.trim().to_string(),
            script: request.script,
            created_at: now,
            updated_at: now,
        };
        // Counted and added under the account's lock: concurrent creations cannot pass the limit together.
        let mut tx = self.context.store.begin().await?;
        barrack_store::firewalls::lock_account(&mut tx, caller.account_id()).await?;
        if scripts::count_for_account(&mut tx, caller.account_id()).await? >= MAX_SCRIPTS {
            return Err(Error::conflict(
                "LIMIT_EXCEEDED",
                format!("An account may hold at most {MAX_SCRIPTS} startup scripts"),
            ));
        }
        let mut draws = IdDraws::of("script");
        loop {
            match scripts::insert(&mut tx, &row).await {
                Ok(true) => break,
                Ok(false) => {
                    draws.taken()?;
                    row.id = new_id(IdKind::Script);
                }
                Err(StoreError::Unique(_)) => return Err(duplicate(&row.name)),
                Err(e) => return Err(e.into()),
            }
        }
        let script = view(row);
        idempotency::commit(tx, &script).await?;
        Ok(script)
    }

    pub async fn list(&self, caller: &Caller, page: PageQuery) -> Result<ScriptList> {
        let page = page
            .validate()
            .map_err(|(field, message)| Error::field(field, message))?;
        let (rows, total) = self
            .context
            .store
            .scripts(caller.account_id(), page.offset(), page.limit)
            .await?;
        Ok(ScriptList {
            scripts: rows.into_iter().map(view).collect(),
            pagination: Pagination::new(page, total),
        })
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Script> {
        Ok(view(self.row(caller, id).await?))
    }

    /// The account's script, for deploy.
    pub async fn row(&self, caller: &Caller, id: &str) -> Result<ScriptRow> {
        self.context
            .store
            .script(caller.account_id(), id)
            .await?
            .ok_or_else(|| Error::not_found("Script", id))
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        request: ScriptRequest,
    ) -> Result<Script> {
        Self::validate(&request)?;
        let name = request.name.trim();
        let now = self.context.clock.now_ms();
        match self
            .context
            .store
            .update_script(caller.account_id(), id, name, &request.script, now)
            .await
        {
            Ok(true) => self.get(caller, id).await,
            Ok(false) => Err(Error::not_found("Script", id)),
            Err(StoreError::Unique(_)) => Err(duplicate(name)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<()> {
        let deleted = self
            .context
            .store
            .delete_scripts(caller.account_id(), &[id.to_string()])
            .await?;
        if deleted.is_empty() {
            Err(Error::not_found("Script", id))
        } else {
            Ok(())
        }
    }

    /// `DELETE /api/scripts/`: deletes what it can, and says which ids were not the account's scripts.
    pub async fn delete_many(&self, caller: &Caller, ids: Vec<String>) -> Result<DeletedScripts> {
        let mut v = Validator::new();
        v.check(!ids.is_empty(), "script_ids", "Give at least one script id");
        v.check(
            ids.len() <= MAX_BULK,
            "script_ids",
            format!("At most {MAX_BULK} ids at once"),
        );
        v.finish()?;
        let mut unique = ids;
        unique.dedup();
        let deleted = self
            .context
            .store
            .delete_scripts(caller.account_id(), &unique)
            .await?;
        let not_found = unique
            .into_iter()
            .filter(|id| !deleted.contains(id))
            .collect();
        Ok(DeletedScripts { deleted, not_found })
    }
}

/// A taken name is a 400 on `name`: the documented statuses of the script operations are 201/200, 400,
/// 401 and 500 (`docs/api-design.md`).
fn duplicate(name: &str) -> Error {
    Error::field("name", format!("A script named '{name}' already exists"))
}

fn view(row: ScriptRow) -> Script {
    Script {
        size_bytes: row.script.len() as u32,
        id: row.id,
        name: row.name,
        script: row.script,
        created_at: format_ms(row.created_at),
        updated_at: format_ms(row.updated_at),
    }
}
