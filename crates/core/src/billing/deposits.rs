//! Deposits: an account buys credits through the configured payment provider.
//!
//! A deposit opens `pending` with the provider's checkout; the provider's signed webhook (or an operator)
//! completes it. Completing is one transaction: a conditional update `pending` → `completed` and a
//! `deposit` ledger entry keyed `deposit:<id>`, so however often a confirmation arrives, and however many
//! arrive at once, a deposit credits its account exactly once. Until then the account may cancel it
//! (`pending` → `cancelled`, the same kind of conditional update), so a deposit is credited or cancelled,
//! never both.

use std::sync::Arc;

use barrack_api::deposits::{CreateDepositRequest, Deposit, DepositList, DepositStatus};
use barrack_api::ledger::TransactionType;
use barrack_api::{Currency, PageQuery, Pagination};
use barrack_store::deposits::{self, DepositRow};
use barrack_store::ledger::{self, LedgerEntryRow};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::accounts::{Caller, missing_profile_fields};
use crate::billing::ledger::{MAX_BALANCE, above_max_balance};
use crate::billing::payments::{
    self, CheckoutRequest, PaymentEvent, PaymentProvider, WebhookError, WebhookRequest,
};
use crate::platform::clock::format_ms;
use crate::platform::countries;
use crate::platform::idempotency;
use crate::platform::ids::{IdKind, new_id, transaction_id};
use crate::platform::money::{from_micros, to_micros};
use crate::platform::validate::Validator;
use crate::{Context, Error, Result};

/// Largest single deposit, a guard against typos.
const MAX_DEPOSIT: i64 = 1_000_000_000;
/// Deposits one account may have pending (opened, not paid) at once.
pub const MAX_PENDING_DEPOSITS: u64 = 10;

#[derive(Clone)]
pub struct DepositService {
    context: Arc<Context>,
    provider: Arc<dyn PaymentProvider>,
}

/// Who completed a deposit.
#[derive(Debug, Clone, Copy)]
enum Completer<'a> {
    Webhook(&'a str),
    Operator(&'a str),
}

impl Completer<'_> {
    fn record(self) -> String {
        match self {
            Completer::Webhook(provider) => format!("webhook:{provider}"),
            Completer::Operator(id) => format!("operator:{id}"),
        }
    }
}

impl DepositService {
    pub fn new(context: Arc<Context>) -> DepositService {
        let provider = payments::from_config(&context.config.payments);
        DepositService::with_provider(context, provider)
    }

    pub fn with_provider(
        context: Arc<Context>,
        provider: Arc<dyn PaymentProvider>,
    ) -> DepositService {
        DepositService { context, provider }
    }

    pub fn provider(&self) -> &dyn PaymentProvider {
        self.provider.as_ref()
    }

    /// Smallest deposit in `currency`.
    pub fn minimum(&self, currency: Currency) -> Decimal {
        self.context
            .config
            .payments
            .minimum_deposit
            .get(&currency)
            .map(|d| d.0)
            .unwrap_or_default()
    }

    /// Tax rate (percent) shown on deposits in `currency`: GST for INR.
    pub fn tax_percent(&self, currency: Currency) -> Decimal {
        match currency {
            Currency::INR => self.context.config.payments.gst_percent_inr.0,
            Currency::USD | Currency::EUR => Decimal::ZERO,
        }
    }

    /// `POST /api/deposits/`: checks fields (400, all at once), then the billing profile (403), then opens
    /// the provider's checkout and records the deposit as pending.
    pub async fn create(&self, caller: &Caller, request: CreateDepositRequest) -> Result<Deposit> {
        let currency = countries::currency_for(caller.account.country.as_deref());
        let amount = request.amount;
        let mut v = Validator::new();
        v.check(
            amount > Decimal::ZERO,
            "amount",
            "Amount must be greater than zero",
        );
        v.check(
            amount.normalize().scale() <= 2,
            "amount",
            "Amount must have at most 2 decimal places",
        );
        v.check(
            amount <= Decimal::from(MAX_DEPOSIT),
            "amount",
            format!("Amount must be at most {MAX_DEPOSIT}"),
        );
        let minimum = self.minimum(currency);
        if amount > Decimal::ZERO {
            v.check(
                amount >= minimum,
                "amount",
                format!("The minimum deposit is {minimum:.2} {currency}"),
            );
        }
        if let Some(requested) = request.currency {
            v.check(
                requested == currency,
                "currency",
                format!(
                    "Deposits are made in the account's currency, {currency} (it follows the profile country)"
                ),
            );
        }
        v.finish()?;
        // The balance this deposit would leave, were it paid now; completing it checks again.
        let after = amount
            + from_micros(
                self.context
                    .store
                    .balance(caller.account_id(), currency.as_str())
                    .await?,
            );
        if after > Decimal::from(MAX_BALANCE) {
            return Err(Error::field(
                "amount",
                above_max_balance(after, currency.as_str()),
            ));
        }
        let missing = missing_profile_fields(&caller.account);
        if !missing.is_empty() {
            return Err(Error::ProfileIncomplete(missing));
        }

        // Checked before the provider is asked for a checkout, and again under the account's lock as the
        // deposit is written.
        let too_many = || {
            Error::conflict(
                "LIMIT_EXCEEDED",
                format!(
                    "An account may have at most {MAX_PENDING_DEPOSITS} pending deposits: pay one, or cancel one you will not pay (POST /api/deposits/{{id}}/cancel/), first"
                ),
            )
        };
        if deposits::count_pending(&mut &self.context.store, caller.account_id()).await?
            >= MAX_PENDING_DEPOSITS
        {
            return Err(too_many());
        }
        let tax_percent = self.tax_percent(currency);
        let tax = (amount * tax_percent / Decimal::ONE_HUNDRED)
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
        let total = amount + tax;
        let micros = |value: Decimal, what: &str| {
            to_micros(value).ok_or_else(|| Error::internal(format!("deposit {what} {value}")))
        };
        let id = new_id(IdKind::Deposit);
        let checkout = self
            .provider
            .create_checkout(&CheckoutRequest {
                deposit_id: &id,
                account_id: caller.account_id(),
                amount,
                tax,
                total_payable: total,
                currency,
            })
            .await?;
        let now = self.context.clock.now_ms();
        let row = DepositRow {
            id: id.clone(),
            account_id: caller.account_id().to_string(),
            currency: currency.as_str().to_string(),
            amount_micros: micros(amount, "amount")?,
            tax_percent_micros: micros(tax_percent, "tax rate")?,
            tax_micros: micros(tax, "tax")?,
            total_micros: micros(total, "total")?,
            status: DepositStatus::Pending.as_str().to_string(),
            provider: self.provider.name().to_string(),
            payment_reference: checkout.payment_reference,
            checkout_url: checkout.checkout_url,
            transaction_id: None,
            completed_by: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
        };
        let mut tx = self.context.store.begin().await?;
        barrack_store::firewalls::lock_account(&mut tx, caller.account_id()).await?;
        if deposits::count_pending(&mut tx, caller.account_id()).await? >= MAX_PENDING_DEPOSITS {
            return Err(too_many());
        }
        deposits::insert(&mut tx, &row).await?;
        let deposit = view(&row)?;
        // With the answer of a request that came with an Idempotency-Key, so that a retry after a crash
        // between the commit and the answer does not open a second deposit.
        idempotency::commit(tx, &deposit).await?;
        tracing::info!(
            deposit_id = %row.id,
            account = %row.account_id,
            amount = %amount,
            %currency,
            provider = %row.provider,
            "deposit opened"
        );
        Ok(deposit)
    }

    /// `GET /api/deposits/`: the caller's deposits, newest first.
    pub async fn list(&self, caller: &Caller, page: PageQuery) -> Result<DepositList> {
        let page = page
            .validate()
            .map_err(|(field, message)| Error::field(field, message))?;
        let (rows, total) = self
            .context
            .store
            .deposits(caller.account_id(), page.offset(), page.limit)
            .await?;
        Ok(DepositList {
            deposits: rows.iter().map(view).collect::<Result<_>>()?,
            pagination: Pagination::new(page, total),
        })
    }

    /// `GET /api/deposits/{id}/`: another account's deposit is 404.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Deposit> {
        let row = self
            .context
            .store
            .account_deposit(caller.account_id(), id)
            .await?
            .ok_or_else(|| Error::not_found("Deposit", id))?;
        view(&row)
    }

    /// `POST /api/deposits/{id}/cancel/`: a pending deposit of the caller's becomes `cancelled`, freeing its
    /// place under the cap; another account's is 404, one completed or cancelled already is 409.
    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<Deposit> {
        let now = self.context.clock.now_ms();
        let store = &self.context.store;
        let cancelled =
            deposits::mark_cancelled(&mut &*store, caller.account_id(), id, now).await?;
        let row = store
            .account_deposit(caller.account_id(), id)
            .await?
            .ok_or_else(|| Error::not_found("Deposit", id))?;
        if !cancelled {
            return Err(not_pending(&row));
        }
        tracing::info!(deposit_id = %id, account = %row.account_id, "deposit cancelled");
        view(&row)
    }

    /// `POST /api/deposits/webhook/`: the provider authenticates the raw request (401 otherwise, logged),
    /// then the event must name a deposit (404) with its amount and currency (400), which completes once
    /// (a replay is 409, logged).
    pub async fn handle_webhook(&self, request: &WebhookRequest<'_>) -> Result<Deposit> {
        let provider = self.provider.name();
        let event = match self.provider.verify_webhook(request) {
            Ok(event) => event,
            Err(WebhookError::Unauthenticated(problem)) => {
                tracing::warn!(
                    provider,
                    reason = problem.reason(),
                    body_bytes = request.body.len(),
                    "payment webhook refused: not authenticated"
                );
                return Err(Error::Unauthenticated(problem.public_message()));
            }
            Err(WebhookError::Invalid { field, message }) => {
                tracing::warn!(provider, %field, %message, "payment webhook refused: invalid event");
                return Err(Error::field(&field, message));
            }
        };
        let PaymentEvent::Succeeded {
            deposit_id,
            amount,
            currency,
        } = event;
        let Some(row) = self.context.store.deposit(&deposit_id).await? else {
            tracing::warn!(provider, deposit_id = %deposit_id, "payment webhook refused: unknown deposit");
            return Err(Error::not_found("Deposit", &deposit_id));
        };
        let mut v = Validator::new();
        v.check(
            amount == from_micros(row.amount_micros),
            "amount",
            format!(
                "Amount {amount} does not match the deposit's amount {}",
                from_micros(row.amount_micros)
            ),
        );
        v.check(
            currency.as_str() == row.currency,
            "currency",
            format!(
                "Currency {currency} does not match the deposit's currency {}",
                row.currency
            ),
        );
        if let Err(e) = v.finish() {
            tracing::warn!(
                provider,
                deposit_id = %deposit_id,
                reported_amount = %amount,
                reported_currency = %currency,
                "payment webhook refused: amount or currency differs from the deposit"
            );
            return Err(e);
        }
        match self
            .complete(&deposit_id, Completer::Webhook(provider))
            .await
        {
            Err(e @ Error::Conflict { .. }) => {
                tracing::warn!(provider, deposit_id = %deposit_id, "payment webhook refused: the deposit is not pending (a replay, or cancelled)");
                Err(e)
            }
            other => other,
        }
    }

    /// `POST /api/admin/deposits/{id}/complete/` (the caller checks the role): the same exactly-once path.
    pub async fn complete_by_operator(&self, operator_id: &str, id: &str) -> Result<Deposit> {
        self.complete(id, Completer::Operator(operator_id)).await
    }

    /// Completes a pending deposit and credits its account, in one transaction; 404 for an unknown deposit,
    /// 409 for one already completed or cancelled.
    async fn complete(&self, id: &str, by: Completer<'_>) -> Result<Deposit> {
        let now = self.context.clock.now_ms();
        let completed_by = by.record();
        let mut tx = self.context.store.begin().await?;
        if !deposits::mark_completed(&mut tx, id, &completed_by, now).await? {
            drop(tx);
            return Err(match self.context.store.deposit(id).await? {
                None => Error::not_found("Deposit", id),
                Some(row) => not_pending(&row),
            });
        }
        let mut row = deposits::get(&mut tx, id)
            .await?
            .ok_or_else(|| Error::internal(format!("deposit {id} vanished while completing")))?;
        let entry = LedgerEntryRow {
            id: new_id(IdKind::Transaction),
            account_id: row.account_id.clone(),
            currency: row.currency.clone(),
            kind: TransactionType::Deposit.as_str().to_string(),
            amount_micros: row.amount_micros,
            balance_after_micros: 0,
            description: format!("Deposit {id} ({})", row.provider),
            idempotency_key: Some(format!("deposit:{id}")),
            created_by: Some(completed_by.clone()),
            created_at: now,
        };
        let Some(appended) = ledger::append(&mut tx, &entry, transaction_id).await? else {
            // The deposit's entry exists already: nothing changes (the transaction rolls back).
            drop(tx);
            return Err(not_pending(&row));
        };
        let after = from_micros(appended.balance_after_micros);
        if after > Decimal::from(MAX_BALANCE) {
            // Other deposits completed since this one was opened; it stays pending.
            drop(tx);
            return Err(Error::conflict(
                "LIMIT_EXCEEDED",
                above_max_balance(after, &row.currency),
            ));
        }
        deposits::set_transaction(&mut tx, id, &appended.id).await?;
        tx.commit().await.map_err(Error::internal)?;
        row.transaction_id = Some(appended.id);
        tracing::info!(
            deposit_id = %id,
            account = %row.account_id,
            amount = %from_micros(row.amount_micros),
            currency = %row.currency,
            %completed_by,
            "deposit completed"
        );
        view(&row)
    }
}

/// 409 for a deposit that is no longer pending: it can be neither completed nor cancelled.
fn not_pending(row: &DepositRow) -> Error {
    let message = if row.status == DepositStatus::Cancelled.as_str() {
        format!(
            "Deposit {} was cancelled: it credits nothing; open a new deposit instead",
            row.id
        )
    } else {
        format!(
            "Deposit {} is already {}: it is credited only once",
            row.id, row.status
        )
    };
    Error::conflict("INVALID_STATE", message)
}

fn view(row: &DepositRow) -> Result<Deposit> {
    Ok(Deposit {
        id: row.id.clone(),
        amount: from_micros(row.amount_micros),
        tax_percent: from_micros(row.tax_percent_micros),
        tax: from_micros(row.tax_micros),
        total_payable: from_micros(row.total_micros),
        currency: Currency::parse(&row.currency)
            .ok_or_else(|| Error::internal(format!("currency {}", row.currency)))?,
        status: DepositStatus::parse(&row.status)
            .ok_or_else(|| Error::internal(format!("deposit status {}", row.status)))?,
        provider: row.provider.clone(),
        payment_reference: row.payment_reference.clone(),
        checkout_url: row.checkout_url.clone(),
        transaction_id: row.transaction_id.clone(),
        created_at: format_ms(row.created_at),
        completed_at: row.completed_at.map(format_ms),
    })
}
