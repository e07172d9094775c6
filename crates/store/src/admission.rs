//! A plain deploy's last steps, after it wrote its instance: the account's commitment read, a first
//! address tried and the GPUs taken. The account is held (on PostgreSQL, its row locked) from the first
//! of them to the commit, so on PostgreSQL they are one round trip (the function `deploy_admission`,
//! migrations 0037 and 0038) instead of three: every deploy of the account waits for that hold. The
//! statements are the store's own ([`crate::billing::COMMITMENTS_SQL`], [`crate::public_ips::TAKE_SQL`],
//! [`crate::capacity::ALLOCATE_SQL`]), written in the functions word for word so that PostgreSQL keeps
//! their plans ([`postgres_function_statements`] lists them for the test that compares).

use crate::billing::{COMMITMENTS_SQL, Commitments, commitments, commitments_from};
use crate::capacity::{ALLOCATE_SQL, allocate};
use crate::public_ips::{TAKE_SQL, take};
use crate::sql::Columns;
use crate::{Backend, Db, Result, StoreError, Tx, binds};

/// What a deploy asks for once its instance is written.
#[derive(Debug, Clone)]
pub struct Admission<'a> {
    pub account_id: &'a str,
    pub currency: &'a str,
    /// The instance written: left out of the commitment (the caller counts it), and the address's holder.
    pub instance_id: &'a str,
    pub region: &'a str,
    pub gpu_model: &'a str,
    pub gpu_count: i64,
    /// An address of the region's pool to take for the instance, when it gets one.
    pub address: Option<&'a str>,
    pub now: i64,
}

/// What the account has committed, and what the deploy got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub commitments: Commitments,
    /// Whether the address was free and is now the instance's.
    pub address_taken: bool,
    /// Whether the GPUs were free and are now the instance's.
    pub gpus_taken: bool,
}

/// Holds the account, reads its commitments, then tries the address and the GPUs, in `tx`. Nothing is
/// refused here: the caller checks the commitment first, and rolls back whatever the deploy cannot have.
pub async fn admit(tx: &mut Tx, admission: &Admission<'_>) -> Result<Admitted> {
    let Admission {
        account_id,
        currency,
        instance_id,
        region,
        gpu_model,
        gpu_count,
        address,
        now,
    } = *admission;
    match tx.backend() {
        Backend::Postgres => {
            let mut rows = tx
                .fetch_all(
                    "SELECT * FROM deploy_admission($1, $2, $3, $4, $5, $6, $7, $8)",
                    &binds![
                        account_id,
                        currency,
                        instance_id,
                        address,
                        region,
                        now,
                        gpu_model,
                        gpu_count
                    ],
                )
                .await?;
            // The last row says what the address's and the stock's statements changed.
            let outcome = rows
                .pop()
                .filter(|row| row.int(0).is_ok_and(|tag| tag == 4))
                .ok_or_else(|| StoreError::Unexpected("deploy_admission gave no outcome".into()))?;
            Ok(Admitted {
                commitments: commitments_from(&rows)?,
                address_taken: outcome.int(4)? == 1,
                gpus_taken: outcome.int(5)? == 1,
            })
        }
        Backend::Sqlite => {
            let commitments = commitments(tx, account_id, currency, Some(instance_id)).await?;
            let address_taken = match address {
                Some(address) => take(tx, region, address, instance_id, now).await?,
                None => false,
            };
            let gpus_taken = allocate(tx, region, gpu_model, gpu_count, now).await?;
            Ok(Admitted {
                commitments,
                address_taken,
                gpus_taken,
            })
        }
    }
}

/// The prices a plain deploy's commitment is checked with in the database ([`admit_and_commit`]): decimal
/// text in the deploy's currency, as the server prices commitments.
#[derive(Debug, Clone)]
pub struct CommitmentPrices<'a> {
    /// The deploy's own first hour.
    pub added: String,
    /// The balance the account must keep.
    pub minimum: String,
    /// Each GPU model's price per GPU-hour.
    pub gpu_models: Vec<(&'a str, String)>,
    /// Each volume type's price per GB-hour.
    pub volume_types: Vec<(&'a str, String)>,
    /// An hibernating instance's price per hour.
    pub hibernation: String,
    /// Each tier's price of a snapshot per hour.
    pub snapshot_tiers: Vec<(&'a str, String)>,
}

/// How [`admit_and_commit`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Admitted and committed.
    Done,
    /// Rolled back: the balance (micro-units) does not hold the minimum and an hour of the committed
    /// burn (decimal text) and the deploy's first hour.
    Refused { balance: i64, burn: String },
    /// Rolled back: the address was taken meanwhile.
    AddressTaken,
    /// Rolled back: the GPUs are not free.
    NoStock,
}

/// PostgreSQL: a plain deploy's admission with its commitment checked in the database, sent with the
/// COMMIT in one message (the function `deploy_admission_checked`, migrations 0039 and 0049), so the account,
/// held from the admission's lock to the commit, is held for no round trip back to the server. What
/// the deploy cannot have rolls the transaction back; the caller answers from the outcome.
pub async fn admit_and_commit(
    tx: Tx,
    admission: &Admission<'_>,
    prices: &CommitmentPrices<'_>,
) -> Result<Committed> {
    let sql = format!(
        "SELECT deploy_admission_checked({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        literal(admission.account_id),
        literal(admission.currency),
        literal(admission.instance_id),
        admission
            .address
            .map_or_else(|| "NULL".to_string(), literal),
        literal(admission.region),
        admission.now,
        literal(admission.gpu_model),
        admission.gpu_count,
        number(&prices.added),
        number(&prices.minimum),
        array(
            prices.gpu_models.iter().map(|(name, _)| literal(name)),
            "TEXT"
        ),
        array(prices.gpu_models.iter().map(|(_, p)| number(p)), "NUMERIC"),
        array(
            prices.volume_types.iter().map(|(name, _)| literal(name)),
            "TEXT"
        ),
        array(
            prices.volume_types.iter().map(|(_, p)| number(p)),
            "NUMERIC"
        ),
        number(&prices.hibernation),
        array(
            prices.snapshot_tiers.iter().map(|(tier, _)| literal(tier)),
            "TEXT"
        ),
        array(
            prices.snapshot_tiers.iter().map(|(_, p)| number(p)),
            "NUMERIC"
        ),
    );
    match tx.commit_after(&sql).await {
        Ok(()) => Ok(Committed::Done),
        Err(StoreError::Database(e)) => {
            let Some(db) = e.as_database_error() else {
                return Err(StoreError::Database(e));
            };
            match db.code().as_deref() {
                Some("B0402") => {
                    let message = db.message();
                    let refused = message.split_once(' ').and_then(|(balance, burn)| {
                        Some(Committed::Refused {
                            balance: balance.parse().ok()?,
                            burn: burn.to_string(),
                        })
                    });
                    refused.ok_or_else(|| {
                        StoreError::Unexpected(format!(
                            "deploy_admission_checked refused: {message}"
                        ))
                    })
                }
                Some("B0409") => Ok(Committed::AddressTaken),
                Some("B0503") => Ok(Committed::NoStock),
                _ => Err(StoreError::from(e)),
            }
        }
        Err(e) => Err(e),
    }
}

/// `value` as an SQL string literal, whatever `standard_conforming_strings` says.
fn literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if quoted.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// A decimal as an SQL number: digits with an optional sign and point, or the literal of a string that
/// PostgreSQL then refuses as a number.
fn number(value: &str) -> String {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let plain = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1;
    if plain {
        value.to_string()
    } else {
        format!("CAST({} AS NUMERIC)", literal(value))
    }
}

/// An SQL array of `items` (literals), typed.
fn array(items: impl Iterator<Item = String>, of: &str) -> String {
    format!(
        "CAST(ARRAY[{}] AS {of}[])",
        items.collect::<Vec<_>>().join(", ")
    )
}

/// The store's statements that PostgreSQL's functions hold (migrations 0038 and 0039), each as the function must
/// read it: (function, statement with the function's arguments for its placeholders). The statements
/// keep one text for both databases this way, checked against the functions' source by a test.
pub fn postgres_function_statements() -> Vec<(&'static str, String)> {
    vec![
        ("account_commitments", COMMITMENTS_SQL.clone()),
        (
            "deploy_admission",
            named(TAKE_SQL, &["p_address", "p_region", "p_instance", "p_now"]),
        ),
        (
            "deploy_admission",
            named(ALLOCATE_SQL, &["p_region", "p_model", "p_count", "p_now"]),
        ),
        (
            "deploy_admission_checked",
            named(TAKE_SQL, &["p_address", "p_region", "p_instance", "p_now"]),
        ),
        (
            "deploy_admission_checked",
            named(ALLOCATE_SQL, &["p_region", "p_model", "p_count", "p_now"]),
        ),
    ]
}

/// `sql` with `$1`, `$2`, ... replaced by `names`, in order.
fn named(sql: &str, names: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) if (1..=names.len()).contains(&n) => out.push_str(names[n - 1]),
            _ => out.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::named;

    #[test]
    fn placeholders_are_named_in_order_and_others_left() {
        assert_eq!(
            named("VALUES ($1, $2, $10, $) WHERE x = $2", &["a", "b"]),
            "VALUES (a, b, $10, $) WHERE x = b"
        );
    }
}
