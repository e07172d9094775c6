//! Idempotency keys: a client's retry of a POST gets the first attempt's response instead of a second
//! effect. A claim is a row per (account, key); the effect's own transaction completes it with the
//! response ([`complete`]), so an effect without its stored response cannot commit.

use crate::sql::Columns;
use crate::{Db, Result, Store, binds};

/// What a request with an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's now: run it.
    Claimed,
    /// An earlier request with this key and the same fingerprint finished: its response.
    Replay { status: u16, body: String },
    /// An earlier request used this key for something else.
    Mismatch,
    /// An earlier request with this key is still running (its lease has not run out).
    InProgress,
}

/// The claim to insert or take over.
pub struct NewClaim<'a> {
    pub account_id: &'a str,
    pub key: &'a str,
    pub fingerprint: &'a str,
    /// This request's random token: only it completes or releases the claim.
    pub owner: &'a str,
    pub now: i64,
    /// The time leases are measured on (real time, which moving the simulation clock does not change,
    /// so a claim another server's request holds does not look expired after a move).
    pub lease_now: i64,
    /// The end of the claim's lease, on `lease_now`'s time.
    pub locked_until: i64,
    /// Rows created before this are forgotten (keys are kept for a day).
    pub expired_before: i64,
}

impl Store {
    /// Claims `key` for a request, or says what an earlier request with it left.
    pub async fn claim_idempotency_key(&self, c: &NewClaim<'_>) -> Result<Claim> {
        // A few rounds at most: each lost race means another request changed the row in between.
        for _ in 0..5 {
            let inserted = self
                .execute(
                    "INSERT INTO idempotency_keys (account_id, idem_key, fingerprint, state, owner, \
                     locked_until, created_at) VALUES ($1, $2, $3, 'running', $4, $5, $6) \
                     ON CONFLICT (account_id, idem_key) DO NOTHING",
                    &binds![
                        c.account_id,
                        c.key,
                        c.fingerprint,
                        c.owner,
                        c.locked_until,
                        c.now
                    ],
                )
                .await?;
            if inserted == 1 {
                return Ok(Claim::Claimed);
            }
            let Some(row) = self
                .fetch_optional(
                    "SELECT fingerprint, state, owner, locked_until, response_status, response_body, \
                     created_at FROM idempotency_keys WHERE account_id = $1 AND idem_key = $2",
                    &binds![c.account_id, c.key],
                )
                .await?
            else {
                continue;
            };
            let (fingerprint, state, owner) = (row.text(0)?, row.text(1)?, row.text(2)?);
            let (locked_until, created_at) = (row.int(3)?, row.int(6)?);
            if created_at < c.expired_before {
                self.execute(
                    "DELETE FROM idempotency_keys WHERE account_id = $1 AND idem_key = $2 \
                     AND created_at = $3",
                    &binds![c.account_id, c.key, created_at],
                )
                .await?;
                continue;
            }
            if fingerprint != c.fingerprint {
                return Ok(Claim::Mismatch);
            }
            if state == "done" {
                return Ok(Claim::Replay {
                    status: u16::try_from(row.int(4)?).unwrap_or(500),
                    body: row.text(5)?,
                });
            }
            if locked_until > c.lease_now {
                return Ok(Claim::InProgress);
            }
            // The holder's lease ran out without a response (its server died, say): nothing of it
            // committed, so this request takes the claim over. Should the holder still finish, its
            // completion finds another owner and its transaction rolls back.
            let taken = self
                .execute(
                    "UPDATE idempotency_keys SET owner = $1, locked_until = $2 WHERE account_id = $3 \
                     AND idem_key = $4 AND state = 'running' AND owner = $5",
                    &binds![c.owner, c.locked_until, c.account_id, c.key, &owner],
                )
                .await?;
            if taken == 1 {
                return Ok(Claim::Claimed);
            }
        }
        Ok(Claim::InProgress)
    }

    /// Gives a claim up (the request failed in a way a retry should run again); false when it was not
    /// this owner's any more.
    pub async fn release_idempotency_key(
        &self,
        account_id: &str,
        key: &str,
        owner: &str,
    ) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM idempotency_keys WHERE account_id = $1 AND idem_key = $2 AND owner = $3 \
                 AND state = 'running'",
                &binds![account_id, key, owner],
            )
            .await?;
        Ok(n == 1)
    }

    /// Forgets keys created before `before`; how many.
    pub async fn purge_idempotency_keys(&self, before: i64) -> Result<u64> {
        self.execute(
            "DELETE FROM idempotency_keys WHERE created_at < $1",
            &binds![before],
        )
        .await
    }
}

/// Stores the response of the claim's request, in `db` (the transaction of the request's effect, so both
/// commit or neither). False when the claim is no longer this owner's: the caller must not commit.
pub async fn complete(
    db: &mut impl Db,
    account_id: &str,
    key: &str,
    owner: &str,
    status: u16,
    body: &str,
) -> Result<bool> {
    let n = db
        .execute(
            "UPDATE idempotency_keys SET state = 'done', response_status = $1, response_body = $2 \
             WHERE account_id = $3 AND idem_key = $4 AND owner = $5 AND state = 'running'",
            &binds![i64::from(status), body, account_id, key, owner],
        )
        .await?;
    Ok(n == 1)
}
