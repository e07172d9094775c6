//! Accounts and their billing profiles.

use crate::sql::{Columns, insert_new_sql};
use crate::{Db, Result, Store, binds};

#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    pub id: String,
    /// Lowercase.
    pub email: String,
    pub password_hash: String,
    pub name: String,
    pub phone: Option<String>,
    pub address_line: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub is_admin: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set while an operator has the account disabled: it cannot authenticate at all.
    pub disabled_at: Option<i64>,
}

/// The editable part of a profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileFields {
    pub name: String,
    pub phone: Option<String>,
    pub address_line: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, email, password_hash, name, phone, address_line, city, state, postal_code, country, \
                       is_admin, created_at, updated_at, disabled_at";

/// An account from `COLUMNS` read from position `first` on.
pub(crate) fn from_row(row: &impl Columns, first: usize) -> Result<AccountRow> {
    Ok(AccountRow {
        id: row.text(first)?,
        email: row.text(first + 1)?,
        password_hash: row.text(first + 2)?,
        name: row.text(first + 3)?,
        phone: row.opt_text(first + 4)?,
        address_line: row.opt_text(first + 5)?,
        city: row.opt_text(first + 6)?,
        state: row.opt_text(first + 7)?,
        postal_code: row.opt_text(first + 8)?,
        country: row.opt_text(first + 9)?,
        is_admin: row.flag(first + 10)?,
        created_at: row.int(first + 11)?,
        updated_at: row.int(first + 12)?,
        disabled_at: row.opt_int(first + 13)?,
    })
}

/// Inserts an account; false, writing nothing, when its id is taken (the caller draws another). A
/// taken email is `StoreError::Unique`.
pub async fn insert(db: &mut impl Db, account: &AccountRow) -> Result<bool> {
    let sql = insert_new_sql("accounts", COLUMNS);
    let inserted = db
        .execute(
            &sql,
            &binds![
                &account.id,
                &account.email,
                &account.password_hash,
                &account.name,
                &account.phone,
                &account.address_line,
                &account.city,
                &account.state,
                &account.postal_code,
                &account.country,
                account.is_admin,
                account.created_at,
                account.updated_at,
                account.disabled_at,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

impl Store {
    pub async fn account_by_id(&self, id: &str) -> Result<Option<AccountRow>> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = $1");
        let row = self.fetch_optional(&sql, &binds![id]).await?;
        row.as_ref().map(|r| from_row(r, 0)).transpose()
    }

    pub async fn account_by_email(&self, email: &str) -> Result<Option<AccountRow>> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE email = $1");
        let row = self.fetch_optional(&sql, &binds![email]).await?;
        row.as_ref().map(|r| from_row(r, 0)).transpose()
    }

    pub async fn count_accounts(&self) -> Result<u64> {
        Ok(self.read_int("SELECT COUNT(*) FROM accounts", &[]).await? as u64)
    }

    /// A page of accounts, oldest first, and the total.
    pub async fn list_accounts(&self, offset: u64, limit: u32) -> Result<(Vec<AccountRow>, u64)> {
        let sql =
            format!("SELECT {COLUMNS} FROM accounts ORDER BY created_at, id LIMIT $1 OFFSET $2");
        let rows = self
            .fetch_all(&sql, &binds![i64::from(limit), offset as i64])
            .await?;
        let accounts = rows
            .iter()
            .map(|r| from_row(r, 0))
            .collect::<Result<Vec<_>>>()?;
        Ok((accounts, self.count_accounts().await?))
    }

    /// Replaces the editable profile fields; false when the account does not exist.
    pub async fn update_profile(
        &self,
        id: &str,
        profile: &ProfileFields,
        now: i64,
    ) -> Result<bool> {
        let done = self
            .execute(
                "UPDATE accounts SET name = $2, phone = $3, address_line = $4, city = $5, state = $6, \
                 postal_code = $7, country = $8, updated_at = $9 WHERE id = $1",
                &binds![
                    id,
                    &profile.name,
                    &profile.phone,
                    &profile.address_line,
                    &profile.city,
                    &profile.state,
                    &profile.postal_code,
                    &profile.country,
                    now,
                ],
            )
            .await?;
        if done == 1 {
            self.auth_changed(id).await?;
        }
        Ok(done == 1)
    }
}

/// Replaces the password hash.
pub async fn set_password_hash(db: &mut impl Db, id: &str, hash: &str, now: i64) -> Result<bool> {
    let done = db
        .execute(
            "UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE id = $1",
            &binds![id, hash, now],
        )
        .await?;
    Ok(done == 1)
}

/// Whether the account is disabled (`None` when it does not exist), read in `db`: after the account's lock,
/// what a disable committed before it.
pub async fn is_disabled(db: &mut impl Db, id: &str) -> Result<Option<bool>> {
    let row = db
        .fetch_optional(
            "SELECT CASE WHEN disabled_at IS NULL THEN 0 ELSE 1 END FROM accounts WHERE id = $1",
            &binds![id],
        )
        .await?;
    row.map(|r| Ok(r.int(0)? == 1)).transpose()
}

/// Disables (`Some(time)`) or enables (`None`) an account; false when it does not exist.
pub async fn set_disabled(db: &mut impl Db, id: &str, disabled_at: Option<i64>) -> Result<bool> {
    let done = db
        .execute(
            "UPDATE accounts SET disabled_at = $2 WHERE id = $1",
            &binds![id, disabled_at],
        )
        .await?;
    Ok(done == 1)
}
