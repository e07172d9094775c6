//! What an account's AI calls used and cost: totals per model over a time range, and the calls one by one.

use barrack_api::ai::{
    AiTransaction, ModelUsage, UsageHistory, UsageHistoryQuery, UsageSummary, UsageSummaryQuery,
};
use barrack_api::{Currency, PageQuery, Pagination};
use barrack_store::ai::AiRequestRow;

use super::AiService;
use crate::accounts::Caller;
use crate::platform::clock::format_ms;
use crate::platform::countries;
use crate::platform::money::from_micros;
use crate::platform::validate::{Validator, check_order, check_time, validate_range};
use crate::{Error, Result};

/// The default range of the summary: the last 30 days.
const DEFAULT_RANGE_MS: i64 = 30 * 24 * 3600 * 1000;

impl AiService {
    /// `GET /api/ai/usage/summary/`.
    pub async fn usage_summary(
        &self,
        caller: &Caller,
        query: UsageSummaryQuery,
    ) -> Result<UsageSummary> {
        let mut v = Validator::new();
        let (from, to) = self.range(&mut v, &query);
        v.finish()?;
        let currency = countries::currency_for(caller.account.country.as_deref());
        let rows = self
            .inner
            .context
            .store
            .ai_usage(caller.account_id(), Some(from), Some(to))
            .await?;
        let mut models: Vec<ModelUsage> = Vec::new();
        for row in &rows {
            // Calls are charged in the account's currency; should it have changed, only the cost of its
            // present currency is summed.
            let cost = if row.currency == currency.as_str() {
                row.cost_micros
            } else {
                0
            };
            let usage = match models.last_mut() {
                Some(last) if last.model.as_deref() == Some(row.model.as_str()) => last,
                _ => {
                    models.push(empty(Some(row.model.clone())));
                    models.last_mut().expect("just pushed")
                }
            };
            add(
                usage,
                row.requests,
                row.input_tokens,
                row.output_tokens,
                cost,
            );
        }
        let mut total = empty(None);
        for m in &models {
            total.requests += m.requests;
            total.input_tokens += m.input_tokens;
            total.output_tokens += m.output_tokens;
            total.total_tokens += m.total_tokens;
            total.cost += m.cost;
        }
        Ok(UsageSummary {
            from: format_ms(from),
            to: format_ms(to),
            currency,
            models,
            total,
        })
    }

    /// `GET /api/ai/usage/history/`.
    pub async fn usage_history(
        &self,
        caller: &Caller,
        query: UsageHistoryQuery,
    ) -> Result<UsageHistory> {
        let range = validate_range(
            PageQuery {
                page: query.page,
                limit: query.limit,
            },
            query.from.as_deref(),
            query.to.as_deref(),
        )?;
        let page = range.page;
        let (rows, total) = self
            .inner
            .context
            .store
            .ai_requests(
                caller.account_id(),
                range.from_ms,
                range.to_ms,
                page.offset(),
                page.limit,
            )
            .await?;
        Ok(UsageHistory {
            transactions: rows.iter().map(transaction_view).collect::<Result<_>>()?,
            pagination: Pagination::new(page, total),
        })
    }

    /// `from` and `to` of a summary: given, or the last 30 days (a `to` given before `from` is refused).
    fn range(&self, v: &mut Validator, query: &UsageSummaryQuery) -> (i64, i64) {
        let given_to = check_time(v, "to", query.to.as_deref());
        let given_from = check_time(v, "from", query.from.as_deref());
        check_order(v, given_from, given_to);
        // Up to and including the present millisecond.
        let to = given_to.unwrap_or_else(|| self.inner.context.clock.now_ms() + 1);
        (given_from.unwrap_or(to - DEFAULT_RANGE_MS), to)
    }
}

fn empty(model: Option<String>) -> ModelUsage {
    ModelUsage {
        model,
        requests: 0,
        input_tokens: 0,
        output_tokens: 0,
        total_tokens: 0,
        cost: Default::default(),
    }
}

fn add(usage: &mut ModelUsage, requests: i64, input: i64, output: i64, cost_micros: i64) {
    usage.requests += requests as u64;
    usage.input_tokens += input as u64;
    usage.output_tokens += output as u64;
    usage.total_tokens += (input + output) as u64;
    usage.cost = (usage.cost + from_micros(cost_micros)).normalize();
}

fn transaction_view(row: &AiRequestRow) -> Result<AiTransaction> {
    Ok(AiTransaction {
        id: row.id.clone(),
        model: row.model.clone(),
        input_tokens: row.input_tokens as u64,
        output_tokens: row.output_tokens as u64,
        total_tokens: (row.input_tokens + row.output_tokens) as u64,
        cost: from_micros(row.cost_micros),
        currency: Currency::parse(&row.currency)
            .ok_or_else(|| Error::internal(format!("currency {}", row.currency)))?,
        status: row.status.clone(),
        request_id: row.request_id.clone(),
        stream: row.stream,
        ledger_transaction_id: row.ledger_entry_id.clone(),
        created_at: format_ms(row.created_at),
    })
}
