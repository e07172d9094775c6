//! Credits: balances, the ledger of transactions, and operator grants.

use std::sync::Arc;

use barrack_api::ledger::{
    CreditBalance, CurrencyBalance, Transaction, TransactionList, TransactionQuery, TransactionType,
};
use barrack_api::{Currency, PageQuery, Pagination};
use barrack_store::Tx;
use barrack_store::ledger::{self, LedgerEntryRow, LedgerFilter};
use rust_decimal::Decimal;

use crate::accounts::Caller;
use crate::platform::clock::format_ms;
use crate::platform::countries;
use crate::platform::idempotency;
use crate::platform::ids::{IdKind, new_id, transaction_id};
use crate::platform::money::{from_micros, to_micros};
use crate::platform::validate::{Validator, validate_range};
use crate::{Context, Error, Result};

/// Largest single grant, a guard against typos.
const MAX_GRANT: i64 = 1_000_000_000;
/// Largest balance a grant or a deposit may leave in one currency: a thousand times the largest grant,
/// and far below what the balance's micro-units can hold, so that no credit can overflow it.
pub const MAX_BALANCE: i64 = 1_000 * MAX_GRANT;

/// The refusal of a credit that would take a balance above [`MAX_BALANCE`], in whole units.
pub fn above_max_balance(balance: Decimal, currency: &str) -> String {
    format!(
        "The balance would be {balance} {currency}, above the largest an account may hold, \
         {MAX_BALANCE}"
    )
}

#[derive(Clone)]
pub struct LedgerService {
    context: Arc<Context>,
}

/// An entry to append to an account's ledger.
pub struct Entry<'a> {
    pub account_id: &'a str,
    pub currency: Currency,
    pub kind: TransactionType,
    /// Positive credits, negative debits.
    pub amount: Decimal,
    pub description: String,
    pub idempotency_key: Option<String>,
    pub created_by: Option<String>,
}

impl LedgerService {
    pub fn new(context: Arc<Context>) -> LedgerService {
        LedgerService { context }
    }

    /// `GET /api/balance/`.
    pub async fn balance(&self, caller: &Caller) -> Result<CreditBalance> {
        let currency = countries::currency_for(caller.account.country.as_deref());
        let held = self.context.store.balances(caller.account_id()).await?;
        let amount_in = |c: Currency| {
            held.iter()
                .find(|(code, _)| code == c.as_str())
                .map(|(_, micros)| from_micros(*micros))
                .unwrap_or_default()
        };
        let mut balances: Vec<CurrencyBalance> = held
            .iter()
            .filter_map(|(code, micros)| {
                Currency::parse(code).map(|currency| CurrencyBalance {
                    currency,
                    balance: from_micros(*micros),
                })
            })
            .collect();
        if !balances.iter().any(|b| b.currency == currency) {
            balances.push(CurrencyBalance {
                currency,
                balance: Decimal::ZERO,
            });
        }
        balances.sort_by_key(|b| b.currency);
        Ok(CreditBalance {
            currency,
            balance: amount_in(currency),
            minimum_balance: self.minimum_balance(currency),
            balances,
        })
    }

    pub fn minimum_balance(&self, currency: Currency) -> Decimal {
        self.context
            .config
            .billing
            .minimum_balance
            .get(&currency)
            .map(|d| d.0)
            .unwrap_or_default()
    }

    /// `GET /api/transactions/`.
    pub async fn transactions(
        &self,
        caller: &Caller,
        query: TransactionQuery,
    ) -> Result<TransactionList> {
        let page = PageQuery::new(query.page, query.limit);
        let range = validate_range(page, query.from.as_deref(), query.to.as_deref())?;
        let page = range.page;
        let filter = LedgerFilter {
            kind: query.kind.map(|k| k.as_str().to_string()),
            currency: query.currency.map(|c| c.as_str().to_string()),
            from_ms: range.from_ms,
            to_ms: range.to_ms,
        };
        let (rows, total) = self
            .context
            .store
            .ledger_entries(caller.account_id(), &filter, page.offset(), page.limit)
            .await?;
        Ok(TransactionList {
            transactions: rows.iter().map(transaction_of).collect::<Result<_>>()?,
            pagination: Pagination::new(page, total),
        })
    }

    /// Appends one entry in its own transaction. `None` when its idempotency key was already used.
    pub async fn append(&self, entry: Entry<'_>) -> Result<Option<Transaction>> {
        let Some((tx, transaction)) = self.append_within(entry, None).await? else {
            return Ok(None);
        };
        tx.commit().await.map_err(Error::internal)?;
        Ok(Some(transaction))
    }

    /// The entry appended in a new transaction, for the caller to commit; refused (400 on `amount`,
    /// nothing written) when the balance would end above `limit`. `None` when its idempotency key was
    /// already used.
    async fn append_within(
        &self,
        entry: Entry<'_>,
        limit: Option<Decimal>,
    ) -> Result<Option<(Tx, Transaction)>> {
        let amount_micros = to_micros(entry.amount)
            .ok_or_else(|| Error::field("amount", "Amount must have at most 6 decimal places"))?;
        let row = LedgerEntryRow {
            id: new_id(IdKind::Transaction),
            account_id: entry.account_id.to_string(),
            currency: entry.currency.as_str().to_string(),
            kind: entry.kind.as_str().to_string(),
            amount_micros,
            balance_after_micros: 0,
            description: entry.description,
            idempotency_key: entry.idempotency_key,
            created_by: entry.created_by,
            created_at: self.context.clock.now_ms(),
        };
        let mut tx = self.context.store.begin().await?;
        let Some(appended) = ledger::append(&mut tx, &row, transaction_id).await? else {
            return Ok(None);
        };
        if let Some(limit) = limit
            && from_micros(appended.balance_after_micros) > limit
        {
            drop(tx);
            return Err(Error::field(
                "amount",
                above_max_balance(from_micros(appended.balance_after_micros), &row.currency),
            ));
        }
        Ok(Some((tx, transaction_of(&appended)?)))
    }

    /// Operators (the caller checks the role): credits an account (a `grant` entry, never an overwrite).
    pub async fn grant(
        &self,
        operator_id: &str,
        account_id: &str,
        amount: Decimal,
        currency: Currency,
        note: Option<String>,
    ) -> Result<Transaction> {
        let mut v = Validator::new();
        v.check(
            amount > Decimal::ZERO,
            "amount",
            "Amount must be greater than zero",
        );
        v.check(
            amount <= Decimal::from(MAX_GRANT),
            "amount",
            format!("Amount must be at most {MAX_GRANT}"),
        );
        v.check(
            amount.normalize().scale() <= 2,
            "amount",
            "Amount must have at most 2 decimal places",
        );
        if let Some(note) = &note {
            v.check(
                note.chars().count() <= 255,
                "note",
                "Note must be 255 characters or less",
            );
            crate::platform::validate::check_plain_text(&mut v, "note", note, false);
        }
        v.finish()?;
        let account = self
            .context
            .store
            .account_by_id(account_id)
            .await?
            .ok_or_else(|| Error::not_found("User", account_id))?;
        let description = match note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(note) => format!("Credit grant: {note}"),
            None => "Credit grant".to_string(),
        };
        let entry = Entry {
            account_id: &account.id,
            currency,
            kind: TransactionType::Grant,
            amount,
            description,
            idempotency_key: None,
            created_by: Some(operator_id.to_string()),
        };
        let limit = Decimal::from(MAX_BALANCE);
        let (tx, transaction) = self
            .append_within(entry, Some(limit))
            .await?
            .ok_or_else(|| {
                Error::internal("a grant without an idempotency key was not appended")
            })?;
        // With the answer of a request that came with an Idempotency-Key: a retry after a crash between
        // this commit and the answer replays it instead of crediting the account again.
        idempotency::commit(tx, &transaction).await?;
        Ok(transaction)
    }
}

fn transaction_of(row: &LedgerEntryRow) -> Result<Transaction> {
    Ok(Transaction {
        id: row.id.clone(),
        kind: TransactionType::parse(&row.kind)
            .ok_or_else(|| Error::internal(format!("ledger kind {}", row.kind)))?,
        amount: from_micros(row.amount_micros),
        currency: Currency::parse(&row.currency)
            .ok_or_else(|| Error::internal(format!("currency {}", row.currency)))?,
        balance_after: from_micros(row.balance_after_micros),
        description: row.description.clone(),
        created_at: format_ms(row.created_at),
    })
}
